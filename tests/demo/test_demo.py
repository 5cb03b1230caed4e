"""`make demo`, the README's first command, runs the whole story and leaves what it promises.

It runs the very script `make demo` runs (scripts/demo.py), stamped from the snapshot of the
working tree into a temporary folder, then reads the outcome back from the demo spoke's own
registry, rollout state and audit trail: v2 promoted through the canary, the broken v3 rolled
back automatically, the chart written, the trail intact. The `make demo` target itself is
`$(RUN) python scripts/demo.py`; the words `make demo` below keep the README's command tied
to this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout import state as rollout_state
from tests.hub import HUB

README_COMMAND = ("make", "demo")


def test_the_readme_runs_the_demo_through_make() -> None:
    readme = (HUB / "README.md").read_text()
    makefile = (HUB / "Makefile").read_text()
    assert " ".join(README_COMMAND) in readme.split("\n\n", 2)[1]  # in the opening block
    assert "demo: setup" in makefile and "python scripts/demo.py" in makefile


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_make_demo_tells_the_whole_story(template_repo: Path, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, str(HUB / "scripts" / "demo.py")],
        cwd=HUB,
        text=True,
        env={**env, "SLIPWAY_DEMO_DIR": str(demo), "SLIPWAY_DEMO_TEMPLATE": str(template_repo)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-6000:]
    assert f"The spoke is in {demo}" in done.stdout
    # Its first step is what a team runs right after `copier copy` (make setup, check, test),
    # with only python3, git, make and uv: the spoke's own environment holds the CLI.
    for target in ("setup", "check", "test"):
        assert f"$ make --no-print-directory {target}" in done.stdout
    assert (demo / ".venv" / "bin" / "slipway").exists()

    config = load_config(demo)
    client = registry.client(demo)
    model = config.model_name
    aliases = {alias: str(v) for alias, v in client.get_registered_model(model).aliases.items()}
    assert aliases == {"champion": "2", "previous": "1"}
    broken = client.get_model_version(model, "3")
    assert broken.tags[registry.TAG_ROLLOUT_OUTCOME] == "rolled_back"

    rollouts = [(r.version, r.status) for r in rollout_state.all_rollouts(demo)]
    assert rollouts == [("1", "promoted"), ("2", "promoted"), ("3", "rolled_back")]
    actions = [(e["action"], e["version"]) for e in audit.read(demo)]
    assert actions.index(("promote", "2")) < actions.index(("rollback", "3"))
    assert audit.verify(demo).ok
    chart = demo / "build" / "rollouts.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (demo / "docs" / "model_card.md").is_file()
    assert not (demo / "mlflow.db").exists()
