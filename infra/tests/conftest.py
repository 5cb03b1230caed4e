"""Fixtures for the infra tests: real slipway.toml files rendered by copier, one per tier.

Stacks run under Pulumi's mock mode (slipway.infra.testing): a stand-in for AWS.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from slipway.pipelines.config import SpokeConfig, load_config

HUB = Path(__file__).resolve().parents[2]
TIERS = ("low", "medium", "high")


def render_spoke(dst: Path, **answers: object) -> Path:
    """Copy this checkout at HEAD plus uncommitted changes (never an older tag)."""
    from copier import run_copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier warns that the checkout is dirty: expected
        run_copy(str(HUB), dst, data=answers, defaults=True, quiet=True, unsafe=False,
                 vcs_ref="HEAD")
    return dst


@pytest.fixture(scope="session")
def spokes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo spoke rendered once per risk tier (default answers otherwise)."""
    base = tmp_path_factory.mktemp("spokes")
    return {tier: render_spoke(base / tier, risk_tier=tier) for tier in TIERS}


@pytest.fixture(scope="session")
def configs(spokes: dict[str, Path]) -> dict[str, SpokeConfig]:
    return {tier: load_config(root) for tier, root in spokes.items()}
