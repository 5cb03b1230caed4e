"""The hub's views across spokes: the registry catalog, the fleet of template versions, and
the web console over both and the team state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._lazy import lazy_exports

if TYPE_CHECKING:
    from slipway.pipelines.hub.catalog import (
        CatalogEntry,
        format_table,
    )
    from slipway.pipelines.hub.console_app import ConsoleSettings, create_app
    from slipway.pipelines.hub.fleet import (
        NotASpoke,
        SpokeStatus,
        spoke_status,
    )
    from slipway.pipelines.hub.overview import Overview, SpokeView

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
