"""Batch scoring: `slipway score` against what a team would write, on the same file and model.

The file: 1,000,000 rows of the demo spoke's features (its data repeated, a customer id in
front) as Parquet, with 0.05% of the rows pushed above the contract's maximum: values the
model still scores, so the baseline runs without an error and scores them silently.

1. baseline: a fresh Python process that does what a team's notebook job does:
   `pd.read_parquet` of the whole file, `mlflow.pyfunc.load_model("models:/<name>/1")`, one
   `predict` over every row, the ids and predictions written with `to_parquet`;
2. `slipway score FILE --output OUT --version 1` in a fresh process: the contract check on
   every row, quarantine of the bad rows, lineage columns on every row, the file streamed in
   `[batch] chunk_rows` chunks, the MLflow run with the batch's prediction PSI against the
   training split, and the audit entry.

Each side runs `--repeat` times, alternating; wall time and peak RSS (the process's own
maximum resident set, from wait4) of each run are printed, and the ratio of the medians.
Goal (issue 23): slipway at most 1.3x the baseline's time; its peak memory bounded by the
chunk size, not the file.

    uv run --no-sync python benchmarks/batch.py [--rows 1000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HUB = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BAD_SHARE = 0.0005

BASELINE = """
import sys
import mlflow.pyfunc
import pandas as pd

source, output, uri, features = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
frame = pd.read_parquet(source)
model = mlflow.pyfunc.load_model(uri)
predictions = model.predict(frame[features])
pd.DataFrame({"customer_id": frame["customer_id"], "prediction": predictions}).to_parquet(output)
"""


def make_spoke(where: Path):
    from copier import run_copy

    from slipway.pipelines import registry
    from slipway.pipelines.config import load_config
    from slipway.pipelines.rollout import release
    from slipway.pipelines.rollout.rehearsal import register_trained

    root = where / "spoke"
    run_copy(
        str(HUB),
        root,
        data={"risk_tier": "low"},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
        unsafe=False,
    )
    text = (root / "slipway.toml").read_text()
    (root / "slipway.toml").write_text(
        text.replace("id_columns = []", 'id_columns = ["customer_id"]')
    )
    config = load_config(root)
    v1 = register_trained(root, config, {"C": 1.0, "max_iter": 500})
    release.promote(
        root, registry.client(root), config.model_name, v1, reason="benchmark: first champion"
    )
    return root, config


def make_file(root: Path, config, rows: int, path: Path) -> int:
    import numpy as np
    import pandas as pd

    from slipway.pipelines.training.spoke_code import features, load_frame

    base = features(load_frame(root, config), config)
    table = pd.concat([base] * (rows // len(base) + 1), ignore_index=True).head(rows)
    table.insert(0, "customer_id", np.arange(rows, dtype="int64"))
    rng = np.random.default_rng(0)
    bad = rng.choice(rows, int(rows * BAD_SHARE), replace=False)
    first = next(iter(config.data.contract.columns))
    top = config.data.contract.columns[first].max
    table.loc[bad, first] = top * 10  # above the contract's max: still a number to the model
    table.to_parquet(path, row_group_size=100_000)
    return len(bad)


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and the exit code of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed:\n{out.decode()[-2000:]}\n{err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slipway-batch-bench-") as tmp:
        where = Path(tmp)
        root, config = make_spoke(where)
        source = where / "customers.parquet"
        bad = make_file(root, config, args.rows, source)
        size = source.stat().st_size / 2**20
        print(
            f"{args.rows:,} rows x {len(config.data.contract.columns)} features, {size:.0f} MiB "
            f"Parquet, {bad:,} rows above the contract; chunk_rows {config.batch.chunk_rows:,}"
        )
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        env.pop("MLFLOW_TRACKING_URI", None)
        from slipway.pipelines import registry

        uri = registry.tracking_uri(root)
        features = ",".join(config.data.contract.columns)
        sides: dict[str, list[tuple[float, float]]] = {"baseline": [], "slipway": []}
        for i in range(args.repeat):
            out = where / f"baseline-{i}.parquet"
            seconds, rss, _ = run(
                [
                    sys.executable,
                    "-c",
                    BASELINE,
                    str(source),
                    str(out),
                    f"models:/{config.model_name}/1",
                    features,
                ],
                {**env, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri},
            )
            sides["baseline"].append((seconds, rss))
            print(f"  baseline run {i + 1}: {seconds:.2f} s, peak RSS {rss:,.0f} MiB")
            out = where / f"slipway-{i}.parquet"
            seconds, rss, _ = run(
                [
                    str(VENV_BIN / "slipway"),
                    "-C",
                    str(root),
                    "score",
                    str(source),
                    "--output",
                    str(out),
                    "--version",
                    "1",
                ],
                env,
            )
            sides["slipway"].append((seconds, rss))
            print(f"  slipway run {i + 1}: {seconds:.2f} s, peak RSS {rss:,.0f} MiB")
        import pandas as pd

        scored = len(pd.read_parquet(where / "slipway-0.parquet", columns=["row"]))
        quarantined = len(pd.read_parquet(where / "slipway-0.quarantine.parquet", columns=["row"]))
        assert scored + quarantined == args.rows and quarantined == bad, (scored, quarantined)
        base_t = statistics.median(t for t, _ in sides["baseline"])
        slip_t = statistics.median(t for t, _ in sides["slipway"])
        base_m = max(m for _, m in sides["baseline"])
        slip_m = max(m for _, m in sides["slipway"])
        print()
        print("| side | median wall time | rows/s | peak RSS |")
        print("|---|---|---|---|")
        print(
            f"| `pd.read_parquet` + `pyfunc.load_model(...).predict` + `to_parquet` | "
            f"{base_t:.2f} s | {args.rows / base_t:,.0f} | {base_m:,.0f} MiB |"
        )
        print(
            f"| `slipway score` (contract, quarantine, lineage, run + audit) | {slip_t:.2f} s | "
            f"{args.rows / slip_t:,.0f} | {slip_m:,.0f} MiB |"
        )
        print()
        verdict = "met" if slip_t <= 1.3 * base_t else "MISSED"
        print(f"time ratio slipway / baseline: {slip_t / base_t:.2f}x (goal <= 1.3x: {verdict})")
        print(f"peak RSS ratio slipway / baseline: {slip_m / base_m:.2f}x")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
