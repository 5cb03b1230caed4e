"""What `slipway status` reports: registry aliases, the gateway's live weights and the last
rollout with its latest guardrail readings, plus what to do when a rollout is left open."""

from __future__ import annotations

from typing import Any

from slipway.pipelines import registry
from slipway.pipelines.redact import shown_url
from slipway.pipelines.rollout import state as rollout_state
from slipway.pipelines.serving.client import GatewayClient, GatewayUnreachable, resolve_url
from slipway.pipelines.spoke import Spoke


def collect(spoke: Spoke, url: str | None = None) -> dict[str, Any]:
    config = spoke.config
    client = registry.client(spoke.root)
    model = config.model_name
    aliases = {}
    for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS):
        found = registry.version_by_alias(client, model, alias)
        aliases[alias] = None if found is None else str(found.version)
    gateway = GatewayClient(resolve_url(url, config), timeout=5.0)
    try:
        gw: dict[str, Any] = {"url": shown_url(gateway.url), "reachable": True, **gateway.state()}
    except GatewayUnreachable:
        gw = {"url": shown_url(gateway.url), "reachable": False}
    finally:
        gateway.close()
    row = spoke.rollouts.latest()
    rollout = None
    action = None
    if row is not None:
        rollout = row.as_dict()
        readings = spoke.rollouts.readings(row.id)
        rollout["last_reading"] = readings[-1] if readings else None
        rollout["events"] = spoke.rollouts.events(row.id)
        if row.status in rollout_state.OPEN_STATUSES:
            lease = "expired" if rollout_state.lease_expired(row) else "held"
            action = (
                f"rollout {row.id} is open ({row.status}); if its controller "
                f"({row.owner}, lease {lease}) is gone, run `slipway deploy --resume` to "
                "continue or `slipway rollback` to abort"
            )
    return {"model": model, "aliases": aliases, "gateway": gw, "rollout": rollout, "action": action}
