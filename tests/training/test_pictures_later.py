"""`slipway train` on a laptop (the step daemon) returns before MLflow's evaluation pictures
of the new model are drawn; they are then logged on the version's run by a process of their
own. The gate's verdict and the model card never depend on them: the card rendered as the
command returns and once the pictures are there is the same card.

A laptop run: CI's CI=true is dropped from the command's environment, and the daemon lives
in a runtime directory of this test's own (stopped at the end).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.training import daemon, pictures
from tests import hub

MODEL = "diagnosis-assist"
MLFLOW_IMAGES = pictures.BINARY_CLASSIFIER_PICTURES


def _card(spoke: Path, version: str) -> tuple[str, str, list[str]]:
    """(the card without its generation time, its fingerprint, its gaps) for `version`."""
    from slipway.pipelines.governance.model_card import render_card

    client = registry.client_for(registry.embedded_tracking_uri(spoke))
    found = client.get_model_version(MODEL, version)
    with tempfile.TemporaryDirectory() as plots:
        text, _, fingerprint, gaps = render_card(
            spoke, load_config(spoke), client, found, plots_dir=Path(plots)
        )
    lines = [line for line in text.splitlines() if "generated" not in line.lower()]
    return "\n".join(lines), fingerprint, gaps


def test_the_pictures_arrive_after_the_command_and_the_card_does_not_wait_for_them(
    template_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from copier import run_copy

    spoke = tmp_path / "spoke"
    run_copy(str(template_repo), spoke, defaults=True, vcs_ref="HEAD", quiet=True)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "copy")):
        hub.git(spoke, *args)
    runtime = Path(tempfile.mkdtemp(prefix="sw-"))  # short: a socket path has ~107 bytes
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MLFLOW_TRACKING_URI")}
    env.update(hub.GIT_ENV, SLIPWAY_STEP_PROCESSES="daemon", SLIPWAY_ACTOR="ds@example.com")
    try:
        done = hub.slipway(spoke, "train", env=env, inherit=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "v1 as challenger" in done.stdout
        card_at_return = _card(spoke, "1")

        client = registry.client_for(registry.embedded_tracking_uri(spoke))
        run_id = client.get_model_version(MODEL, "1").run_id
        assert run_id is not None
        # The step set `drawing` before it ended (the command returned after that).
        state = pictures.wait_for_pictures(client, run_id)
        logs = sorted((spoke / ".slipway" / "pipeline-runs").glob("*.pictures.log"))
        assert state == pictures.DRAWN, [p.read_text() for p in logs]
        run = client.get_run(run_id)
        assert {a.path for a in client.list_artifacts(run_id)} >= MLFLOW_IMAGES
        # The verdict and the numbers the card states were there before the pictures.
        assert run.data.tags[registry.TAG_GATE_VERDICT] == "bootstrap"
        assert card_at_return == _card(spoke, "1")
        # No gap about a picture: the card's plots are the evaluate step's own.
        assert not [gap for gap in card_at_return[2] if ".png" in gap], card_at_return[2]
        (log,) = logs
        assert f"run {run_id}: logged" in log.read_text()
    finally:
        daemon.stop(spoke)
        subprocess.run(["rm", "-rf", str(runtime)], check=False)
