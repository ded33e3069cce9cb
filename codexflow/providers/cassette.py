"""Record/replay cassettes: model exchanges in a readable YAML file, keyed by a hash of the request."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProviderError

_HEADER = "# codexflow cassette: model exchanges recorded with --record, served by --replay.\n"
_SECRET_ENV = re.compile(r".*(_API_KEY|_TOKEN|_SECRET|_PASSWORD)$")
_SECRET_KEYS = frozenset({"api_key", "authorization", "x-api-key", "api-key"})
_MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words and numbers


def request_key(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] = (),
    response_format: Mapping[str, Any] | None = None,
    temperature: float | None = None,
) -> str:
    """A stable hash of everything that decides the answer, over canonical JSON."""
    canonical = json.dumps(
        {
            "model": model,
            "messages": list(messages),
            "tools": list(tools),
            "response_format": response_format,
            "temperature": temperature,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Exchange:
    """One recorded request and the answer it got."""

    key: str
    step: str
    request: dict[str, Any]
    response: dict[str, Any]  # model, content, tool_calls [{id, name, arguments}], usage


class Cassette:
    """A YAML file of exchanges. Thread-safe; `record` rewrites the file after each exchange so an
    interrupted run keeps what it paid for. Replaying a key seen several times serves its answers
    in order and then repeats the last one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._served: dict[str, int] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        cassette = cls(path)
        if not cassette.path.exists():
            raise ProviderError(
                f"cassette {cassette.path} does not exist; record it first with --record"
            )
        data = _yaml().load(cassette.path.read_text(encoding="utf-8")) or {}
        for item in data.get("exchanges") or []:
            cassette._exchanges.append(
                Exchange(
                    str(item["key"]),
                    str(item.get("step", "")),
                    dict(item["request"]),
                    dict(item["response"]),
                )
            )
        return cassette

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def record(self, exchange: Exchange, *, secrets: Sequence[str] = ()) -> None:
        """Add an exchange, secrets removed, and save the file."""
        known = sorted({*secret_values(), *secrets}, key=len, reverse=True)
        clean = Exchange(
            exchange.key,
            exchange.step,
            redact(exchange.request, known),
            redact(exchange.response, known),
        )
        with self._lock:
            self._exchanges.append(clean)
            self._save()

    def has(self, key: str) -> bool:
        with self._lock:
            return any(e.key == key for e in self._exchanges)

    def find(self, key: str) -> Exchange | None:
        """The next recorded answer for this request key, or None."""
        with self._lock:
            matches = [e for e in self._exchanges if e.key == key]
            if not matches:
                return None
            index = self._served.get(key, 0)
            self._served[key] = index + 1
            return matches[min(index, len(matches) - 1)]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "version": 1,
            "exchanges": [
                {"step": e.step, "key": e.key, "request": e.request, "response": e.response}
                for e in self._exchanges
            ],
        }
        buffer = io.StringIO()
        # Round-trip mode keeps our key order (step, key, request, response) instead of sorting.
        _yaml(typ="rt").dump(document, buffer)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(_HEADER + buffer.getvalue(), encoding="utf-8")
        temporary.replace(self.path)  # atomic: a reader never sees half a file


def secret_values() -> list[str]:
    """Values of the environment's *_API_KEY / *_TOKEN / *_SECRET / *_PASSWORD variables."""
    return [
        v
        for k, v in os.environ.items()
        if _SECRET_ENV.match(k.upper()) and len(v) >= _MIN_SECRET_LENGTH
    ]


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """A copy of `value` with secret-named keys dropped and every secret value replaced."""
    if isinstance(value, Mapping):
        return {
            str(k): ("<redacted>" if str(k).lower() in _SECRET_KEYS else redact(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            if len(secret) >= _MIN_SECRET_LENGTH:
                value = value.replace(secret, "<redacted>")
        return value
    return value


def _yaml(typ: str = "safe") -> Any:
    from ruamel.yaml import YAML  # lazily: only record/replay needs it

    yaml = YAML(typ=typ, pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 100
    return yaml
