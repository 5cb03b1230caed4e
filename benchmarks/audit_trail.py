"""What the audit trail costs: one append, file trail against the team's shared trail, and
the shared trail under 8 concurrent appenders.

Measured in one run:
- append to the file trail when it holds 5,000 entries vs when it is empty: the append
  chains from the head record, so the ratio should stay near 1 (it re-read the trail before);
- verify vs read of the same 5,000-entry file trail (what tamper evidence costs to check);
- the shared trail (PostgreSQL, SLIPWAY's `slipway_audit` table): one append from one process
  against one file-trail append (the named baseline), then 8 processes x 200 appends at
  once: nothing lost, the chain verifies, time per append.

Needs the machine's PostgreSQL (127.0.0.1:5432, user postgres); creates and drops its own
database. `--no-shared` skips that part.

    .venv/bin/python benchmarks/audit_trail.py [--entries 5000] [--processes 8] [--appends 200]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from slipway.pipelines.governance import audit

ADMIN = os.environ.get("SLIPWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def median_of(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fill(root: Path, entries: int, actor: str = "bench@example.com") -> None:
    for i in range(entries):
        audit.append(
            root,
            "note",
            model="bench",
            version=i % 7,
            reason=f"entry {i}",
            actor=actor,
            details={"i": i},
        )


def spoke(scratch: Path, name: str) -> Path:
    root = scratch / name
    root.mkdir()
    # The slug keys the shared trail: each spoke here has its own chain.
    (root / "slipway.toml").write_text(f'[project]\nslug = "bench-{name}"\n')
    return root


def _appender(args: tuple[str, str, int, int]) -> float:
    url, root, appends, n = args
    os.environ["SLIPWAY_STATE_URL"] = url
    audit.append(Path(root), "warmup", model="bench", actor=f"proc-{n}")  # connect, schema
    start = time.perf_counter()
    fill(Path(root), appends, actor=f"proc-{n}")
    return time.perf_counter() - start


def file_part(scratch: Path, entries: int, repeat: int) -> float:
    os.environ["SLIPWAY_STATE_URL"] = "local"
    long, empty = spoke(scratch, "long"), spoke(scratch, "empty")
    fill(long, entries)
    assert audit.verify(long).ok
    read = median_of(repeat, lambda: audit.read(long))
    verify = median_of(repeat, lambda: audit.verify(long))
    append_long = median_of(repeat * 20, lambda: fill(long, 1))
    append_empty = median_of(repeat * 20, lambda: fill(empty, 1))
    print(f"file trail of {entries} entries, medians")
    print(f"  read   {read * 1000:8.1f} ms (baseline)")
    print(f"  verify {verify * 1000:8.1f} ms   ratio verify/read = {verify / read:.2f}")
    print(
        f"  append {append_long * 1000:8.2f} ms to the long trail, {append_empty * 1000:.2f} ms "
        f"to an empty one: ratio {append_long / append_empty:.2f} (1 = O(1))"
    )
    return append_empty


def shared_part(scratch: Path, file_append: float, processes: int, appends: int) -> None:
    import psycopg

    name = f"slipway_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        os.environ["SLIPWAY_STATE_URL"] = url
        single = spoke(scratch, "shared-single")
        fill(single, 5)  # connect, create the tables
        one = median_of(200, lambda: fill(single, 1))
        print("shared trail (PostgreSQL on 127.0.0.1), medians of 200")
        print(
            f"  append {one * 1000:8.2f} ms from one process; file trail {file_append * 1000:.2f}"
            f" ms: ratio shared/file = {one / file_append:.1f}"
        )
        root = spoke(scratch, "shared-many")
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            busy = pool.map(_appender, [(url, str(root), appends, n) for n in range(processes)])
        wall = time.perf_counter() - start
        result = audit.verify(root)
        entries = audit.read(root)
        per_proc = {f"proc-{n}": 0 for n in range(processes)}
        for entry in entries:
            if entry["action"] == "note":
                per_proc[entry["actor"]] += 1
        expected = processes * (appends + 1)
        lost = expected - result.entries
        total = processes * appends
        print(f"  {processes} processes x {appends} appends at once:")
        print(
            f"    {result.entries} entries of {expected} written (lost {lost}); chain verifies: "
            f"{result.ok}; per process: {sorted(set(per_proc.values()))}"
        )
        print(
            f"    {statistics.median(busy) / appends * 1000:.2f} ms per append inside a process "
            f"(median process), {sum(busy) / total * 1000:.2f} ms of process time per append, "
            f"{total / max(busy):.0f} appends/s all together (wall incl. start {wall:.1f} s)"
        )
        assert result.ok and lost == 0, result.problems[:3]
    finally:
        from slipway.pipelines import store

        store.engine(url).dispose()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--no-shared", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        file_append = file_part(Path(scratch), args.entries, args.repeat)
        if not args.no_shared:
            shared_part(Path(scratch), file_append, args.processes, args.appends)


if __name__ == "__main__":
    main()
