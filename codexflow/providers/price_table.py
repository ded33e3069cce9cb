"""litellm's local price table, read as JSON without importing litellm (which costs ~2 s).

The reading lives in `codexflow.spec.catalog`, where validate's checks use it too."""

from __future__ import annotations

from codexflow.spec.catalog import model_prices, price_table

__all__ = ["model_prices", "price_table"]
