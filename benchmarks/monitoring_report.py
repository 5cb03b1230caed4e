"""The monitoring report's cost: Slipway's HTML page against Evidently's data-drift report.

Both in fresh interpreters, on the same rows: scikit-learn's breast-cancer data, the first
426 rows as reference, the other 143 scaled by 1.5 as the served window (30 features).
Measured: the import (a fresh process pays it once per scheduled run) and the render,
and the page's size. Evidently runs in its own environment, given by EVIDENTLY_PYTHON (a
venv with evidently installed): it cannot be installed beside the hub's lock (evidently
0.7.23 imports `pandas.core.dtypes.common.infer_dtype_from_object`, gone in pandas 3, which
the hub pins), so it is measured with pandas 2.3 there.

    EVIDENTLY_PYTHON=/tmp/ev/venv/bin/python uv run --no-sync python benchmarks/monitoring_report.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SLIPWAY = """
import time
t0 = time.perf_counter()
from slipway.pipelines.governance.monitoring import FeatureDrift, DriftReport
from slipway.pipelines.governance.monitoring_report import render_html
from slipway.pipelines.statistics import psi
t1 = time.perf_counter()
from sklearn.datasets import load_breast_cancer
x = load_breast_cancer(as_frame=True).frame.drop(columns="target")
ref, cur = x.iloc[:426], x.iloc[426:] * 1.5
t2 = time.perf_counter()
features = [FeatureDrift(c, psi(ref[c].tolist(), cur[c].tolist()), True) for c in x.columns]
report = DriftReport("m", "1", len(cur), len(ref), 100, 0.25, 0.25, features, 0.5,
                     {"0": 0.6, "1": 0.4}, {"0": 0.3, "1": 0.7}, [],
                     {c: (float(ref[c].mean()), float(cur[c].mean())) for c in x.columns})
page = render_html(report, env="prod", window="6 h", verdict=None, means=report.means, perf=None)
open(OUT, "w").write(page)
t3 = time.perf_counter()
print(f"{t1 - t0:.3f} {t3 - t2:.3f}")
"""

EVIDENTLY = """
import time
t0 = time.perf_counter()
from evidently import Report
from evidently.presets import DataDriftPreset
t1 = time.perf_counter()
from sklearn.datasets import load_breast_cancer
x = load_breast_cancer(as_frame=True).frame.drop(columns="target")
ref, cur = x.iloc[:426], x.iloc[426:] * 1.5
t2 = time.perf_counter()
Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur).save_html(OUT)
t3 = time.perf_counter()
print(f"{t1 - t0:.3f} {t3 - t2:.3f}")
"""


def run(python: str, code: str, out: Path) -> tuple[float, float, int]:
    done = subprocess.run(
        [python, "-c", f"OUT = {str(out)!r}\n{code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported, rendered = map(float, done.stdout.split()[-2:])
    return imported, rendered, out.stat().st_size


def main() -> None:
    other = os.environ.get("EVIDENTLY_PYTHON")
    with tempfile.TemporaryDirectory() as tmp:
        ours = run(sys.executable, SLIPWAY, Path(tmp) / "slipway.html")
        print(f"slipway  import {ours[0]:6.2f} s  render {ours[1]:6.2f} s  {ours[2] / 1e6:5.2f} MB")
        if not other:
            print("set EVIDENTLY_PYTHON to compare with Evidently")
            return
        theirs = run(other, EVIDENTLY, Path(tmp) / "evidently.html")
        print(
            f"evidently import {theirs[0]:6.2f} s  render {theirs[1]:6.2f} s  "
            f"{theirs[2] / 1e6:5.2f} MB"
        )
        total = (theirs[0] + theirs[1]) / (ours[0] + ours[1])
        print(f"evidently / slipway: {total:.1f}x the time, {theirs[2] / ours[2]:.0f}x the bytes")


if __name__ == "__main__":
    main()
