"""Moved to `slipway.pipelines.rollout.packaging` in Slipway 0.2.0; this path goes in 0.3.0."""

from typing import TYPE_CHECKING

from slipway.pipelines._compat import moved

if TYPE_CHECKING:
    from slipway.pipelines.rollout.packaging import *  # noqa: F403  # pyright: ignore[reportWildcardImportFromLibrary]

__getattr__ = moved(__name__, "slipway.pipelines.rollout.packaging")
