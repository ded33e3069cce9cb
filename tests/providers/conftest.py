"""Fixtures of the provider tests: the fake OpenAI server, a dummy API key, fast retry routes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# `tests.support` is importable when the repository root is on sys.path; pytest's default
# rootdir-relative import mode only adds this folder, so add the root once.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.openai_server import openai_server  # noqa: E402, F401  (the fixture)

KEY_ENV = "CODEXFLOW_TEST_API_KEY"
KEY_VALUE = "sk-test-0123456789abcdef"


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The NAME of an env var holding a dummy key (routes name the variable, never the key)."""
    monkeypatch.setenv(KEY_ENV, KEY_VALUE)
    return KEY_ENV
