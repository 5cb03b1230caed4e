"""`make demo`: the whole Slipway story on one laptop, on the template's defaults.

Stamps a spoke into build/demo with `copier copy --defaults`, sets it up as a domain team
would (`make setup`), runs its checks and tests, and says where everything is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

HUB = Path(__file__).resolve().parents[1]
DEMO = HUB / "build" / "demo"


def step(title: str) -> None:
    print(f"\n\033[1m==> {title}\033[0m", flush=True)


def run(*cmd: str, cwd: Path = DEMO, check: bool = True) -> int:
    print(f"$ {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd, cwd=cwd, check=check).returncode


def stamp() -> None:
    step(f"copier copy --defaults {HUB} build/demo")
    if DEMO.exists():
        shutil.rmtree(DEMO)
    run(sys.executable, "-m", "copier", "copy", "--defaults", "--quiet", "--vcs-ref", "HEAD",
        str(HUB), str(DEMO), cwd=HUB)
    # A spoke is a git repository: every registered version records its commit.
    run("git", "init", "-q", "-b", "main")
    run("git", "add", "-A")
    run("git", "-c", "user.name=Demo Author", "-c", "user.email=author@example.com",
        "commit", "-q", "-m", "Spoke from the Slipway template")


def main() -> None:
    started = time.perf_counter()
    stamp()
    step("make setup: .venv with uv and the pinned slipway libraries")
    run("make", "--no-print-directory", "setup")
    step("make check: validate slipway.toml")
    run("make", "--no-print-directory", "check")
    step("make test: the spoke's own tests")
    run("make", "--no-print-directory", "test")
    print(f"\nDone in {time.perf_counter() - started:.0f} s. The spoke is in {DEMO}.")
    print("Next: cd build/demo && make help")


if __name__ == "__main__":
    main()
