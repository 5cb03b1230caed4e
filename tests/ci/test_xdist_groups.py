"""`make test` relies on `--dist loadgroup`: tests marked with one `xdist_group` share a
worker, because they share a spoke, a registry or a server built once. If a pytest or
pytest-xdist upgrade stops honouring the marks, those tests spread over workers and fail
(or pass) by scheduling luck; this fails first, naming the cause."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GROUPED = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("n", range(6))
def test_grouped(n, tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent.parent / f"worker-{n}").write_text(
        os.environ["PYTEST_XDIST_WORKER"]
    )
"""
FILLER = """
import time


def test_a():
    time.sleep(0.2)


def test_b():
    time.sleep(0.2)
"""


def test_tests_of_one_xdist_group_run_on_one_worker(tmp_path: Path):
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "test_filler.py").write_text(FILLER)
    base = tmp_path / "base" / "run"
    base.parent.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup",
         "-p", "no:cacheprovider", "--basetemp", str(base), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {p.read_text() for p in (tmp_path / "base").glob("worker-*")}
    assert len(list((tmp_path / "base").glob("worker-*"))) == 6
    assert len(workers) == 1, f"one xdist_group ran on {sorted(workers)}: loadgroup is broken"
