"""What litellm knows (its providers, models and prices), read from its JSON files without
importing litellm (which costs ~2 s), for checks and estimates made before any call."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

PRICES_FILE = "model_prices_and_context_window_backup.json"
PROVIDERS_FILE = "provider_endpoints_support_backup.json"
# Prefixes codexflow answers itself (offline scripts and cassettes): no provider behind them.
OWN_PREFIXES = frozenset({"scripted", "replay"})
# Hosted providers whose model list is closed and in litellm's table: a model missing there is
# most likely a typo. Elsewhere (ollama, vllm, routers, ...) any model name may be served.
CATALOGUED = frozenset(
    {"openai", "anthropic", "gemini", "mistral", "groq", "deepseek", "xai", "cohere"}
)


def _litellm_file(name: str) -> Any:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@cache
def price_table() -> dict[str, dict[str, Any]]:
    """litellm's local model table (prices, context windows), or {} without litellm."""
    data = _litellm_file(PRICES_FILE)
    if not isinstance(data, dict):
        return {}
    return {key: value for key, value in data.items() if isinstance(value, dict)}


@cache
def known_providers() -> frozenset[str]:
    """Every model-string prefix litellm routes (empty when litellm is not installed)."""
    found: set[str] = set()
    data = _litellm_file(PROVIDERS_FILE)
    if isinstance(data, dict) and isinstance(data.get("providers"), dict):
        found.update(name for name in data["providers"] if "/" not in name)
    for entry in price_table().values():
        provider = entry.get("litellm_provider")
        if isinstance(provider, str) and provider.replace("_", "").replace("-", "").isalnum():
            found.add(provider)
    return frozenset(found)


def table_entry(model: str) -> dict[str, Any] | None:
    """The table's entry of a `provider/name` model string, only under that very provider
    (`opnai/gpt-4o` is not OpenAI's gpt-4o)."""
    table = price_table()
    if "/" not in model:
        return table.get(model)
    provider, name = model.split("/", 1)
    for key in (model, name):
        entry = table.get(key)
        if entry is not None and entry.get("litellm_provider") == provider:
            return entry
    return None


def models_of(provider: str) -> list[str]:
    """The model names litellm's table lists under `provider` (without the prefix)."""
    names = []
    for key, entry in price_table().items():
        if entry.get("litellm_provider") == provider:
            names.append(key.split("/", 1)[1] if key.startswith(f"{provider}/") else key)
    return names


def model_prices(model: str) -> tuple[float, float] | None:
    """(USD per input token, USD per output token) of a model string, or None if unknown."""
    entry = table_entry(model)
    if entry is None or "input_cost_per_token" not in entry:
        return None
    return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)
