"""Fixtures for the infra tests: real slipway.toml files rendered by copier, one per tier.

Stacks run under Pulumi's mock mode (slipway.infra.testing): a stand-in for AWS. boto3
calls go to moto's server mode on 127.0.0.1: another stand-in for AWS, not AWS.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
from moto.server import ThreadedMotoServer

from slipway.pipelines.config import SpokeConfig, load_config
from tests.hub import HUB

TIERS = ("low", "medium", "high")


def render_spoke(dst: Path, **answers: object) -> Path:
    """Copy this checkout at HEAD plus uncommitted changes (never an older tag)."""
    from copier import run_copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier warns that the checkout is dirty: expected
        run_copy(
            str(HUB), dst, data=answers, defaults=True, quiet=True, unsafe=False, vcs_ref="HEAD"
        )
    return dst


@pytest.fixture(scope="session")
def spokes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo spoke rendered once per risk tier (default answers otherwise)."""
    base = tmp_path_factory.mktemp("spokes")
    return {tier: render_spoke(base / tier, risk_tier=tier) for tier in TIERS}


@pytest.fixture(scope="session")
def configs(spokes: dict[str, Path]) -> dict[str, SpokeConfig]:
    return {tier: load_config(root) for tier, root in spokes.items()}


# moto's default account: the stand-in answers for this one.
MOTO_ACCOUNT = "123456789012"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode on 127.0.0.1: a stand-in for AWS's HTTP APIs, not AWS."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_stand_in(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every boto3 client made in this test talks to a freshly reset moto server.

    AWS_ENDPOINT_URL is botocore's own setting, so the code under test makes its clients
    exactly as it would against AWS; the credentials are dummies moto accepts.
    """
    for var in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto")
    urlopen(Request(f"{moto_url}/moto-api/reset", method="POST")).close()
    return moto_url


@pytest.fixture
def moto_endpoint() -> Callable[[str, str], Any]:
    """The stand-in's own record of an endpoint (moto runs in this process), so a test can
    put it in the states SageMaker passes through during a deployment, which moto never does.
    """
    from moto.backends import get_backend

    def record(name: str, region: str) -> Any:
        return get_backend("sagemaker")[MOTO_ACCOUNT][region].endpoints[name]

    return record
