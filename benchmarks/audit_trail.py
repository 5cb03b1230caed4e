"""What the audit trail's tamper evidence costs, against just reading the trail.

Baseline: `audit.read` (parse every line) of the same trail in the same run, so the ratio
isolates the hashing, linking and head check of `audit.verify`. Also measured: one append
to a long trail against one append to an empty trail (append re-reads the trail to chain
the new entry, so it grows with the trail's length).

    .venv/bin/python benchmarks/audit_trail.py [--entries 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from slipway.pipelines.governance import audit


def median_of(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fill(root: Path, entries: int) -> None:
    for i in range(entries):
        audit.append(
            root,
            "note",
            model="bench",
            version=i % 7,
            reason=f"entry {i}",
            actor="bench@example.com",
            details={"i": i},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        long, empty = Path(scratch) / "long", Path(scratch) / "empty"
        long.mkdir()
        empty.mkdir()
        fill(long, args.entries)
        assert audit.verify(long).ok
        read = median_of(args.repeat, lambda: audit.read(long))
        verify = median_of(args.repeat, lambda: audit.verify(long))
        append_long = median_of(args.repeat, lambda: fill(long, 1))
        append_empty = median_of(args.repeat, lambda: fill(empty, 1))
    print(f"trail of {args.entries} entries, median of {args.repeat}")
    print(f"  read   {read * 1000:8.1f} ms (baseline)")
    print(f"  verify {verify * 1000:8.1f} ms   ratio verify/read = {verify / read:.2f}")
    print(
        f"  append {append_long * 1000:8.1f} ms to the long trail, "
        f"{append_empty * 1000:.1f} ms to an empty one: ratio {append_long / append_empty:.1f}"
    )


if __name__ == "__main__":
    main()
