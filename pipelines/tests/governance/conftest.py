"""The approval tests' fixtures: the people's SSH keys and an embedded registry only (the
version they decide on is tests.governance_support.register_carded)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.governance_support import AUTHOR, OUTSIDER, REVIEWER


@pytest.fixture
def embedded_registry_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate must read the spoke's own sqlite registry, never a server from the shell; the
    person at the keyboard is the reviewer."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("SLIPWAY_ACTOR", REVIEWER)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh ed25519 key pair per person (private key path; `.pub` next to it)."""
    where = tmp_path_factory.mktemp("keys")
    made = {}
    for person in (AUTHOR, REVIEWER, OUTSIDER):
        key = where / person.split("@")[0]
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", person, "-f", str(key)],
            check=True,
        )
        made[person] = key
    return made
