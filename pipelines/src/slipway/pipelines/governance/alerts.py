"""Alerts to a chat channel: a Slack-compatible incoming webhook, when one is configured.

The webhook's URL is a secret (whoever has it can post to the channel), so it comes from the
environment, `SLIPWAY_ALERT_WEBHOOK` (a CI secret), never from slipway.toml. The body is the
`{"text": ...}` JSON that Slack, Mattermost, Rocket.Chat and Teams' Slack-compatible
connectors all accept. Three events send one: drift found in a monitoring window, retraining
started because of it, and a rollback.

An alert that cannot be delivered never stops what it reports (a rollback must finish
whatever the chat service says): `notify` returns a warning for the caller to print.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from enum import StrEnum

from slipway.pipelines.settings import Settings

__all__ = ["WEBHOOK_ENV", "Event", "notify"]

WEBHOOK_ENV = "SLIPWAY_ALERT_WEBHOOK"
TIMEOUT = 10.0  # seconds; a chat service slower than this is not worth holding a rollback for


class Event(StrEnum):
    DRIFT = "drift"
    RETRAINING = "retraining started"
    ROLLBACK = "rollback"


_ICONS = {Event.DRIFT: ":warning:", Event.RETRAINING: ":arrows_counterclockwise:"}


def notify(
    event: Event, model: str, text: str, *, env: Mapping[str, str] | None = None
) -> str | None:
    """Post one alert when SLIPWAY_ALERT_WEBHOOK is set; None when sent (or not configured),
    else a warning saying why it was not delivered."""
    url = Settings.from_env(env).alert_webhook or ""
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        return f"{WEBHOOK_ENV} is not an http(s) URL; alert not sent: {text}"
    icon = _ICONS.get(event, ":rotating_light:")
    body = json.dumps({"text": f"{icon} *{model}*: {event}. {text}"}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        return f"the alert webhook answered HTTP {exc.code}; alert not sent: {text}"
    except (urllib.error.URLError, OSError) as exc:
        return f"cannot reach the alert webhook ({getattr(exc, 'reason', exc)}); not sent: {text}"
    return None
