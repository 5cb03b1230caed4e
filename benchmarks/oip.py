"""OIP benchmark: the gateway's Open Inference Protocol `infer` against its MLflow
`/invocations`, and against KServe's own Python model server on the same model.

    .venv/bin/python benchmarks/oip.py [--seconds 10] [--connections 20]

On one freshly rendered spoke (the template's logistic regression), wrk (Debian's, with a
Lua script cycling through one-row bodies made from the held-out rows) posts over
`--connections` keep-alive connections for `--seconds` each, loopback only, to:

1. the gateway as the image runs it (`serve`, single-model mode, one worker, uvloop +
   httptools; contract check, batching, metrics on), on MLflow's `/invocations`;
2. the same process on OIP `POST /v2/models/{name}/infer`, one input per column
   (`"content_type": "pd"`, what KServe's MLflow runtime takes);
3. the same process on OIP infer with one [1, k] FP64 tensor;
4. the baseline: KServe's own Python model server (`kserve.ModelServer`, kserve 0.21.0, one
   worker) serving the same fitted estimator the way KServe's scikit-learn server does
   (joblib-loaded, `predict` on the request's tensor; the sklearnserver package itself is
   not on PyPI, so its dozen lines are restated below), on OIP infer with the same tensor.
   It runs in an environment of its own under build/ (kserve's pins are not the hub's).

Numbers are only meaningful relative to each other, measured in the same run on the same
machine; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from serving import (
    HUB,
    free_port,
    make_spoke,
    packaged_model,
    start_single_model,
    stop,
    wait_for,
    wrk,
)

KSERVE = "kserve==0.21.0"
# What KServe's sklearnserver does (python/sklearnserver in kserve's repository, Apache-2.0):
# joblib-load the estimator, predict on the request's input tensor, answer in the protocol.
KSERVE_SKLEARN = """
import argparse, joblib, kserve
from kserve import Model, ModelServer
from kserve.utils.utils import get_predict_input, get_predict_response

class SKLearnModel(Model):
    def __init__(self, name, path):
        super().__init__(name)
        self._model = joblib.load(path)
        self.ready = True

    def predict(self, payload, headers=None):
        return get_predict_response(payload, self._model.predict(get_predict_input(payload)),
                                    self.name)

parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
parser.add_argument("--model_file", required=True)
args, _ = parser.parse_known_args()
ModelServer(workers=1).start([SKLearnModel(args.model_name, args.model_file)])
"""


def kserve_python() -> Path:
    """An environment holding kserve and the hub's scikit-learn (made once under build/)."""
    import sklearn

    where = HUB / "build" / f"bench-{KSERVE.replace('==', '-')}-sklearn-{sklearn.__version__}"
    python = where / "bin" / "python"
    if not (where / ".complete").exists():
        uv = shutil.which("uv") or str(HUB / ".tools" / "bin" / "uv")
        subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(where)], check=True)
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "-q",
                "-p",
                str(python),
                KSERVE,
                f"scikit-learn=={sklearn.__version__}",
            ],
            check=True,
        )
        (where / ".complete").touch()
    return python


def lines(path: Path, docs: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (Debian)")
    import joblib
    import mlflow.sklearn

    from slipway.pipelines.registry import fluent_registry
    from slipway.pipelines.rollout.traffic import replay_rows
    from slipway.pipelines.serving.oip_tensors import CONTRACT_DATATYPE

    python = kserve_python()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        root, config, v1, _ = make_spoke(where)
        name, rules = config.model_name, config.data.contract.columns
        columns = list(rules)
        rows = replay_rows(root, config)
        invocations = lines(
            where / "invocations.txt",
            [
                {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns]]}}
                for r in rows
            ],
        )
        per_column = lines(
            where / "pd.txt",
            [
                {
                    "inputs": [
                        {
                            "name": c,
                            "shape": [1],
                            "datatype": CONTRACT_DATATYPE[rules[c].dtype],
                            "data": [r[c]],
                        }
                        for c in columns
                    ],
                    "parameters": {"content_type": "pd"},
                }
                for r in rows
            ],
        )
        tensor = lines(
            where / "tensor.txt",
            [
                {
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [1, len(columns)],
                            "datatype": "FP64",
                            "data": [float(r[c]) for c in columns],
                        }
                    ]
                }
                for r in rows
            ],
        )
        with fluent_registry(root):
            estimator = mlflow.sklearn.load_model(f"models:/{name}/{v1}")
        joblib.dump(estimator, where / "model.joblib")
        print(
            f"spoke {name}: {len(rows)} held-out rows as one-row requests; wrk, "
            f"{args.connections} connections, {args.seconds:g} s each; "
            f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f}\n"
        )
        results = {}
        proc, url = start_single_model(
            root, packaged_model(root, name, v1, where), 1, "uvloop", "httptools"
        )
        try:
            infer = f"/v2/models/{name}/infer"
            for label, path, bodies in (
                ("gateway, MLflow /invocations (dataframe_split)", "/invocations", invocations),
                ("gateway, OIP infer, one input per column (pd)", infer, per_column),
                ("gateway, OIP infer, one [1, k] FP64 tensor", infer, tensor),
            ):
                results[label] = wrk(label, url, bodies, args.seconds, args.connections, path)
        finally:
            stop(proc)
        port = free_port()
        server = where / "kserve_sklearn.py"
        server.write_text(KSERVE_SKLEARN)
        kserve = subprocess.Popen(
            [
                str(python),
                str(server),
                "--model_name",
                name,
                "--model_file",
                str(where / "model.joblib"),
                "--http_port",
                str(port),
                "--grpc_port",
                str(free_port()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/v2/health/ready")
            label = "KServe ModelServer + scikit-learn, OIP infer, same tensor"
            results[label] = wrk(
                label, f"http://127.0.0.1:{port}", tensor, args.seconds, args.connections, infer
            )
        finally:
            stop(kserve)
        base = results[label]["rps"]
        print("\nreq/s against KServe's own server (same model, same tensor):")
        for key, value in results.items():
            print(f"  {key:<60} {value['rps'] / base:>5.2f}x")


if __name__ == "__main__":
    main()
