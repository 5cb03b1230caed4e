"""A small fleet for the console, built from the real components, once per session.

Three spokes copied with copier from a snapshot of the working tree; then one more release
is tagged on that snapshot, so every spoke is one release behind. One MLflow registry on
sqlite shared by the three (MLFLOW_TRACKING_URI, as a team server would be), each spoke's
rollout state and audit trail in its own files. Versions are registered through MLflow's
client rather than trained (training is tested elsewhere and costs a minute a spoke):

- fraud-radar (high tier): v1 champion, v2 challenger under an open canary at 10 % with
  readings, not approved -> waits for a decision;
- churn-guard (low tier): v1 champion approved with a hostile reason, a rolled-back rollout
  of v2 with a hostile reason, a model card whose Markdown carries script, raw HTML and a
  javascript: link; its audit trail has an edited entry -> TAMPERED;
- claims-triage (medium tier): its trail's last entry cut off -> TRUNCATED.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hub import git, snapshot_working_tree

pytestmark = pytest.mark.xdist_group("console")

# Untrusted text as an attacker would write it into a reason, an actor or a card.
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
CARD = f"""# Model card: churn-guard v1

Reviewed by {HOSTILE}

<div onmouseover="window.__pwned = 3">raw html</div>

[a link](javascript:window.__pwned=4)

| metric | value |
| --- | --- |
| test_auc | 0.91 |
"""
NEWER_RELEASE = "v99.0.0"


@dataclass
class Fleet:
    root: Path
    registry: str
    spokes: dict[str, Path]  # slug -> checkout
    open_rollout: int  # fraud-radar's

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(self.spokes.values())


def _copy(template: Path, dst: Path, name: str, tier: str) -> Path:
    from copier import run_copy

    run_copy(
        str(template),
        dst,
        data={"project_name": name, "risk_tier": tier},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
        unsafe=False,
    )
    return dst


def _register(client, model: str, author: str, count: int) -> list[str]:
    from slipway.pipelines.registry import TAG_AUTHOR, TAG_TEMPLATE_VERSION

    client.create_registered_model(model)
    experiment = client.create_experiment(model)
    runs = []
    for _ in range(count):
        run = client.create_run(experiment)
        client.create_model_version(
            model,
            source=f"runs:/{run.info.run_id}/model",
            run_id=run.info.run_id,
            tags={TAG_AUTHOR: author, TAG_TEMPLATE_VERSION: "v0.0.0"},
        )
        runs.append(run.info.run_id)
    return runs


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    from slipway.pipelines.governance import audit
    from slipway.pipelines.governance.approvals import (
        TAG_APPROVAL_BY,
        TAG_APPROVAL_REASON,
        TAG_APPROVAL_STATE,
    )
    from slipway.pipelines.governance.model_card import TAG_CARD_FINGERPRINT
    from slipway.pipelines.registry import (
        TAG_ROLLOUT_OUTCOME,
        TAG_ROLLOUT_REASON,
        client_for,
    )
    from slipway.pipelines.rollout import state

    root = tmp_path_factory.mktemp("console")
    template = snapshot_working_tree(root / "slipway")
    spokes = {
        "fraud-radar": _copy(template, root / "fraud-radar", "Fraud Radar", "high"),
        "churn-guard": _copy(template, root / "churn-guard", "Churn Guard", "low"),
        "claims-triage": _copy(template, root / "claims-triage", "Claims Triage", "medium"),
    }
    git(template, "commit", "-q", "--allow-empty", "-m", "a newer release")
    git(template, "tag", NEWER_RELEASE)

    registry = f"sqlite:///{root / 'registry.db'}"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "SLIPWAY_STATE_URL")}
    os.environ["MLFLOW_TRACKING_URI"] = registry
    os.environ.pop("SLIPWAY_STATE_URL", None)
    try:
        client = client_for(registry)
        _register(client, "fraud-radar", "dana@example.com", 2)
        client.set_registered_model_alias("fraud-radar", "champion", "1")
        client.set_registered_model_alias("fraud-radar", "challenger", "2")
        fraud = spokes["fraud-radar"]
        audit.append(fraud, "register", model="fraud-radar", version="1", reason="trained")
        audit.append(fraud, "register", model="fraud-radar", version="2", reason="trained")
        opened = state.start(
            fraud,
            model="fraud-radar",
            version="2",
            champion_version="1",
            plan={"steps": [10, 50]},
            pid=os.getpid(),
        )
        state.update(fraud, opened.id, phase="canary", step_index=0, weight=10)
        state.record_event(fraud, opened.id, f"canary at 10 % {HOSTILE}")
        for error_rate in (0.004, 0.006):
            state.record_reading(
                fraud,
                opened.id,
                "canary",
                10,
                {"error_rate": error_rate, "champion_error_rate": 0.005, "p95_ratio": 1.04},
            )

        churn = spokes["churn-guard"]
        runs = _register(client, "churn-guard", "erin@example.com", 2)
        client.set_registered_model_alias("churn-guard", "champion", "1")
        for key, value in (
            (TAG_APPROVAL_STATE, "approved"),
            (TAG_APPROVAL_BY, "frank@example.com"),
            (TAG_APPROVAL_REASON, HOSTILE),
            (TAG_CARD_FINGERPRINT, "0" * 64),
        ):
            client.set_model_version_tag("churn-guard", "1", key, value)
        card = root / "card" / "model_card.md"
        card.parent.mkdir()
        card.write_text(CARD, encoding="utf-8")
        client.log_artifact(runs[0], str(card), "model_card")
        client.set_model_version_tag("churn-guard", "2", TAG_ROLLOUT_OUTCOME, "rolled_back")
        client.set_model_version_tag("churn-guard", "2", TAG_ROLLOUT_REASON, HOSTILE)
        past = state.start(
            churn, model="churn-guard", version="2", champion_version="1", plan={}, pid=1
        )
        state.update(churn, past.id, status=state.ROLLED_BACK, phase="done", reason=HOSTILE)
        for n in range(3):
            audit.append(
                churn, "approve", model="churn-guard", version="1", reason=f"ok {n}", actor=HOSTILE
            )
        trail = churn / ".slipway" / audit.AUDIT_FILE
        lines = trail.read_text().splitlines()
        lines[1] = lines[1].replace("ok 1", "ok, nothing to see")
        trail.write_text("\n".join(lines) + "\n")

        claims = spokes["claims-triage"]
        _register(client, "claims-triage", "gil@example.com", 1)
        client.set_registered_model_alias("claims-triage", "champion", "1")
        for n in range(3):
            audit.append(claims, "register", model="claims-triage", version="1", reason=f"{n}")
        trail = claims / ".slipway" / audit.AUDIT_FILE
        trail.write_text("".join(trail.read_text().splitlines(keepends=True)[:-1]))
        yield Fleet(root, registry, spokes, opened.id)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(autouse=True)
def fleet_registry(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests here read the fleet's shared registry (the root conftest clears it)."""
    if "fleet" in request.fixturenames:
        fleet: Fleet = request.getfixturevalue("fleet")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", fleet.registry)
        monkeypatch.delenv("SLIPWAY_STATE_URL", raising=False)
