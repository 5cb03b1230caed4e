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

_EXPORTS = {
    "CatalogEntry": "catalog",
    "format_table": "catalog",
    "NotASpoke": "fleet",
    "SpokeStatus": "fleet",
    "spoke_status": "fleet",
}
__all__ = ["CatalogEntry", "NotASpoke", "SpokeStatus", "format_table", "spoke_status"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
