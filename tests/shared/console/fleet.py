"""A small fleet for the console on the team's shared services, built from real components.

Three spokes copied with copier from a clone of the template snapshot; then one more release
is tagged on that clone, so every spoke is one release behind. Their registry is the team's
`mlflow server` (PostgreSQL backend, artifacts on moto's S3) and their rollout state and
audit trails live in PostgreSQL, as in production. Versions are registered through MLflow's
client rather than trained (training is tested elsewhere and costs a minute a spoke):

- console-fraud-radar (high tier): v1 champion, v2 challenger under an open canary at 10 %
  with readings, not approved -> waits for a decision;
- console-churn-guard (low tier): v1 champion approved with a hostile reason, a rolled-back
  rollout of v2 with a hostile reason, a model card whose Markdown carries script, raw HTML
  and a javascript: link; an entry of its audit trail edited in the database -> TAMPERED;
- console-claims-triage (medium tier): its trail's last entry deleted -> TRUNCATED.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from tests.hub import git
from tests.shared.test_audit_shared import sql

# Untrusted text as an attacker would write it into a reason, an actor or a card.
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
CARD = f"""# Model card: console-churn-guard v1

Reviewed by {HOSTILE}

<div onmouseover="window.__pwned = 3">raw html</div>

[a link](javascript:window.__pwned=4)

![roc curve](model_card/roc_curve.png)

| metric | value |
| --- | --- |
| test_auc | 0.91 |
"""
NEWER_RELEASE = "v99.0.0"
FRAUD, CHURN, CLAIMS = "console-fraud-radar", "console-churn-guard", "console-claims-triage"


@dataclass
class Fleet:
    root: Path
    registry: str  # the team's MLflow server
    state: str  # the team's state database
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


def _register(client: Any, model: str, author: str, count: int) -> list[str]:
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


def build(root: Path, template_repo: Path, registry: str, state: str) -> Fleet:
    """Make the fleet; the caller has pointed MLFLOW_TRACKING_URI and SLIPWAY_STATE_URL at
    `registry` and `state`."""
    from slipway.pipelines.governance import audit
    from slipway.pipelines.governance.approvals import (
        TAG_APPROVAL_BY,
        TAG_APPROVAL_REASON,
        TAG_APPROVAL_STATE,
    )
    from slipway.pipelines.governance.model_card import TAG_CARD_FINGERPRINT
    from slipway.pipelines.registry import TAG_ROLLOUT_OUTCOME, TAG_ROLLOUT_REASON, client_for
    from slipway.pipelines.rollout import state as rollouts

    template = root / "slipway"
    git(root, "clone", "-q", str(template_repo), str(template))
    spokes = {
        FRAUD: _copy(template, root / "fraud", "Console Fraud Radar", "high"),
        CHURN: _copy(template, root / "churn", "Console Churn Guard", "low"),
        CLAIMS: _copy(template, root / "claims", "Console Claims Triage", "medium"),
    }
    git(template, "commit", "-q", "--allow-empty", "-m", "a newer release")
    git(template, "tag", NEWER_RELEASE)
    client = client_for(registry)

    fraud = spokes[FRAUD]
    _register(client, FRAUD, "dana@example.com", 2)
    client.set_registered_model_alias(FRAUD, "champion", "1")
    client.set_registered_model_alias(FRAUD, "challenger", "2")
    for version in ("1", "2"):
        audit.append(fraud, "register", model=FRAUD, version=version, reason="trained")
    opened = rollouts.start(
        fraud, model=FRAUD, version="2", champion_version="1", plan={}, pid=os.getpid()
    )
    rollouts.update(fraud, opened.id, phase="canary", step_index=0, weight=10)
    rollouts.record_event(fraud, opened.id, f"canary at 10 % {HOSTILE}")
    for error_rate in (0.004, 0.006):
        readings = {"error_rate": error_rate, "champion_error_rate": 0.005, "p95_ratio": 1.04}
        rollouts.record_reading(fraud, opened.id, "canary", 10, readings)

    churn = spokes[CHURN]
    runs = _register(client, CHURN, "erin@example.com", 2)
    client.set_registered_model_alias(CHURN, "champion", "1")
    for key, value in (
        (TAG_APPROVAL_STATE, "approved"),
        (TAG_APPROVAL_BY, "frank@example.com"),
        (TAG_APPROVAL_REASON, HOSTILE),
        (TAG_CARD_FINGERPRINT, "0" * 64),  # a card was made, for other facts: not current
    ):
        client.set_model_version_tag(CHURN, "1", key, value)
    card = root / "card" / "model_card.md"
    card.parent.mkdir()
    card.write_text(CARD, encoding="utf-8")
    client.log_artifact(runs[0], str(card), "model_card")
    plot = root / "card" / "roc_curve.png"  # logged by training as plots/, shown by the card
    Image.new("RGB", (40, 30), (31, 111, 178)).save(plot)
    client.log_artifact(runs[0], str(plot), "plots")
    client.set_model_version_tag(CHURN, "2", TAG_ROLLOUT_OUTCOME, "rolled_back")
    client.set_model_version_tag(CHURN, "2", TAG_ROLLOUT_REASON, HOSTILE)
    past = rollouts.start(churn, model=CHURN, version="2", champion_version="1", plan={}, pid=1)
    rollouts.update(churn, past.id, status=rollouts.ROLLED_BACK, phase="done", reason=HOSTILE)
    for n in range(3):
        audit.append(churn, "approve", model=CHURN, version="1", reason=f"ok {n}", actor=HOSTILE)

    claims = spokes[CLAIMS]
    _register(client, CLAIMS, "gil@example.com", 1)
    client.set_registered_model_alias(CLAIMS, "champion", "1")
    for n in range(3):
        audit.append(claims, "register", model=CLAIMS, version="1", reason=f"entry {n}")

    # Tampered as a database administrator would: with SQL, past the append-only trigger.
    sql(
        state,
        "UPDATE slipway_audit SET entry = replace(entry, 'ok 1', 'ok, nothing to see') "
        f"WHERE trail = '{CHURN}' AND seq = 2",
        f"DELETE FROM slipway_audit WHERE trail = '{CLAIMS}' AND seq = 3",
    )
    return Fleet(root, registry, state, spokes, opened.id)
