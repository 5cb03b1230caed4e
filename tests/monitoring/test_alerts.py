"""A rollback reaches the team's channel: `slipway rollback` on a real spoke, the alert to a
real HTTP server standing in for a Slack incoming webhook."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.registry import CHAMPION, PREVIOUS, client, version_by_alias
from tests import governance_support as support

if TYPE_CHECKING:
    from tests.monitoring.conftest import Hook

# One worker renders the module's spoke once (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("monitoring-spoke")


def test_a_rollback_is_alerted_and_a_dead_webhook_does_not_stop_it(
    rendered: Path, tmp_path: Path, hook: Hook
):
    root = support.make_spoke(rendered, tmp_path, "low")
    model = load_config(root).model_name
    registry = client(root)
    first = support.register_version(root, author=support.AUTHOR)
    second = support.register_version(root, author=support.AUTHOR, c=0.5)
    registry.set_registered_model_alias(model, PREVIOUS, first)
    registry.set_registered_model_alias(model, CHAMPION, second)
    url = ["--url", "http://127.0.0.1:9"]  # no gateway running: the registry is reverted
    result = CliRunner().invoke(
        main,
        ["--project", str(root), "rollback", "--reason", "complaints", *url],
        env={"SLIPWAY_ALERT_WEBHOOK": hook.url, "SLIPWAY_ACTOR": "oncall"},
    )
    assert result.exit_code == 0, result.output
    assert hook.texts == [
        f":rotating_light: *{model}*: rollback. version {second} rolled back: "
        "manual rollback: complaints"
    ]
    champion = version_by_alias(registry, model, CHAMPION)
    assert champion is not None and str(champion.version) == first

    # The channel is down: the rollback still happens.
    registry.set_registered_model_alias(model, PREVIOUS, second)
    registry.set_registered_model_alias(model, CHAMPION, first)
    dead = CliRunner().invoke(
        main,
        ["--project", str(root), "rollback", *url],
        env={"SLIPWAY_ALERT_WEBHOOK": "http://127.0.0.1:9/hook", "SLIPWAY_ACTOR": "oncall"},
    )
    assert dead.exit_code == 0, dead.output
    champion = version_by_alias(registry, model, CHAMPION)
    assert champion is not None and str(champion.version) == second
