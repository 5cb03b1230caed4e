"""The 0.1.0 signatures that took a bare root keep working for one release, and say so on
every call (a DeprecationWarning naming what replaces them); the new ones are silent."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from slipway.pipelines._compat import (
    deprecated_root,
    spoke_or_root,
    spoke_or_root_and_config,
    without_root,
)
from slipway.pipelines.config import SpokeConfig, load_config
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout import state
from slipway.pipelines.rollout.chart import draw_rollouts
from slipway.pipelines.spoke import Spoke
from tests.hub import VALID_SPOKE_TOML


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "slipway.toml").write_text(VALID_SPOKE_TOML)
    return tmp_path


@spoke_or_root
def _where(spoke: Spoke, suffix: str) -> str:
    return f"{spoke.root.name}{suffix}"


@spoke_or_root_and_config
def _named(spoke: Spoke, suffix: str) -> str:
    return spoke.config.project.slug + suffix


@without_root
def _doubled(value: int) -> int:
    return 2 * value


@deprecated_root("spoke.thing()")
def _old(root: Path) -> str:
    return root.name


def test_each_shim_warns_on_every_old_call_and_answers_as_the_new_one(root: Path):
    config = load_config(root)
    spoke = Spoke.open(root, config)
    changed = config.model_copy(
        update={"project": config.project.model_copy(update={"slug": "other"})}
    )
    for _ in range(2):  # every call, not only the first
        with pytest.warns(DeprecationWarning, match="takes a Spoke"):
            assert _where(root, "!") == _where(spoke, "!")
        with pytest.warns(DeprecationWarning, match=r"in place of \(root, config\)"):
            assert _named(root, changed, "!") == "other!"  # the caller's config, as given
        with pytest.warns(DeprecationWarning, match="takes no root"):
            assert _doubled(root, 4) == 8
        with pytest.warns(DeprecationWarning, match=r"_old\(root, \.\.\.\) is deprecated.*"):
            assert _old(root) == root.name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new signatures warn about nothing
        assert _where(spoke, "!") == f"{root.name}!"
        assert _named(spoke, "?") == f"{config.project.slug}?"
        assert _doubled(4) == 8


def test_the_old_store_functions_write_where_the_spoke_reads(root: Path, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ACTOR", "ada@example.com")
    with pytest.warns(DeprecationWarning, match=r"spoke\.record"):
        audit.append(root, "note", model="m", version="1", reason="old call")
    with pytest.warns(DeprecationWarning, match=r"rollouts\.start"):
        row = state.start(
            root, model="m", version="1", champion_version=None, plan={}, pid=os.getpid()
        )
    spoke = Spoke.open(root)
    assert [e["reason"] for e in spoke.audit.read()] == ["old call"]
    assert spoke.rollouts.open_rollout() == row
    with pytest.warns(DeprecationWarning, match=r"show_entries"):
        [line] = audit.show(root)
    assert line == audit.show_entries(spoke.audit.read())[0]


def test_a_real_public_function_keeps_its_old_signature(root: Path, tmp_path: Path):
    """draw_rollouts(root, path) still runs (and refuses an empty spoke the same way)."""
    with pytest.raises(ValueError, match="no rollout"):
        draw_rollouts(Spoke.open(root), tmp_path / "a.png")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="no rollout"):
        draw_rollouts(root, tmp_path / "b.png")


def test_a_spoke_made_from_a_bare_root_loads_its_config_only_when_asked(tmp_path: Path):
    """What the shims open: a root without slipway.toml still reaches its file stores, as
    the 0.1.0 functions did; only reading the config fails (at that point)."""
    bare = Spoke(tmp_path)
    assert bare.audit.read() == []
    with pytest.raises(SlipwayError, match=r"slipway\.toml"):
        _ = bare.config
    assert isinstance(Spoke.open(tmp_path / "x", config=_config_of(tmp_path)).config, SpokeConfig)


def _config_of(tmp_path: Path) -> SpokeConfig:
    (tmp_path / "slipway.toml").write_text(VALID_SPOKE_TOML)
    return load_config(tmp_path)
