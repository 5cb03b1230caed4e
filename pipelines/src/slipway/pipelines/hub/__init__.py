"""The hub's views across spokes: the registry catalog and the fleet of template versions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._lazy import lazy_exports

if TYPE_CHECKING:
    from slipway.pipelines.hub.catalog import (
        CatalogEntry,
        format_table,
    )
    from slipway.pipelines.hub.fleet import (
        NotASpoke,
        SpokeStatus,
        spoke_status,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
