"""The one door to litellm: imported lazily, configured once (offline prices, no telemetry, quiet)."""

from __future__ import annotations

import logging
import os
import threading
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_module: ModuleType | None = None

# Provider names of the offline handlers, as they appear before the first "/" of a model string.
SCRIPTED = "scripted"
REPLAY = "codexflow-replay"


def litellm() -> ModuleType:
    """Import and configure litellm on first use, so `import codexflow.providers` stays cheap."""
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            # Without this litellm fetches its price list from GitHub at import time.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm as module

            _configure(module)
            _module = module
    return _module


def _configure(module: Any) -> None:
    module.telemetry = False
    # Prints a "Give Feedback / Get Help" banner on stdout for every failed call otherwise.
    module.suppress_debug_info = True
    module.set_verbose = False
    # No callbacks: nothing is sent anywhere after a call, and no logging worker loop is fed.
    module.success_callback = []
    module.failure_callback = []
    module.callbacks = []
    # Parameters a model does not support (e.g. temperature on some reasoning models) are
    # dropped instead of failing the call: the spec's defaults apply to every agent.
    module.drop_params = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    from .offline import register_handlers

    register_handlers(module)
