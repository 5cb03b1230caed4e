"""How often one monitoring window raises drift on traffic that has not drifted.

The reference is 426 rows (the template's training split), the window n rows drawn from the
same distribution (log-normal, skewed like the template's features), 30 features (the
breast-cancer contract); drift is any feature's PSI above [monitoring] max_feature_psi
(0.25), computed by the monitor's own `psi`. Prints the per-window rate p and what
[monitoring] drift_windows makes of it (p**N per run of windows, and false retrainings a
year at four windows a day). Baseline: the analytic approximation PSI ~ (1/n + 1/m) chi2(9).

    uv run --no-sync python benchmarks/monitoring_false_alarms.py [REPS]
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.stats import chi2

from slipway.pipelines.statistics import psi

REFERENCE, FEATURES, THRESHOLD, WINDOWS_A_YEAR = 426, 30, 0.25, 4 * 365


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    rng = np.random.default_rng(7)
    for n in (200, 1000):
        hits = 0
        for _ in range(reps):
            ref = rng.lognormal(size=(REFERENCE, FEATURES))
            window = rng.lognormal(size=(n, FEATURES))
            worst = max(psi(ref[:, j].tolist(), window[:, j].tolist()) for j in range(FEATURES))
            hits += worst > THRESHOLD
        per_feature = chi2.sf(THRESHOLD / (1 / n + 1 / REFERENCE), df=9)
        analytic = 1 - (1 - per_feature) ** FEATURES
        print(
            f"window of {n} rows: p = {hits / reps:.4f} measured ({hits}/{reps}), "
            f"{analytic:.4f} analytic"
        )
        for windows in (1, 2, 3):
            p = max(hits / reps, analytic) ** windows
            print(
                f"  drift_windows = {windows}: {p:.2e} per run, "
                f"{p * WINDOWS_A_YEAR:.3g} false retrainings a year"
            )


if __name__ == "__main__":
    main()
