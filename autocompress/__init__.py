"""autocompress: automated compression search for transformer translation models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autocompress.api import SearchResult

__all__ = ["search"]


def search(model: str = "demo", budget: str | list[str] = "20", **options: Any) -> SearchResult:
    """Run a compression search (see autocompress.api.search); imported on call, so `import autocompress`
    stays light."""
    from autocompress.api import search as run

    return run(model, budget, **options)
