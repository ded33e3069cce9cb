"""Scripted responses: a YAML/JSON file of canned answers, matched per model and step, in order."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ProviderError


@dataclass(frozen=True)
class ScriptedError:
    """A failure to play instead of an answer: an HTTP status, a message, an optional Retry-After."""

    status: int
    message: str = "scripted error"
    retry_after: float | None = None


@dataclass(frozen=True)
class ScriptedReply:
    """One canned answer. `step`/`model` (None: any) choose which calls it may answer; `repeat`
    keeps it for every later matching call instead of using it once."""

    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()  # {name, arguments (text or mapping), id?}
    usage: tuple[int, int] = (0, 0)  # (prompt_tokens, completion_tokens)
    delay: float = 0.0
    error: ScriptedError | None = None
    step: str | None = None
    model: str | None = None
    repeat: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScriptedReply:
        unknown = set(data) - {
            "content",
            "tool_calls",
            "usage",
            "delay",
            "error",
            "step",
            "model",
            "repeat",
        }
        if unknown:
            raise ProviderError(f"scripted reply has unknown keys: {', '.join(sorted(unknown))}")
        usage = data.get("usage") or {}
        error = data.get("error")
        content = data.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content)  # a mapping in YAML is the JSON a structured answer holds
        return cls(
            content=content,
            tool_calls=tuple(dict(call) for call in data.get("tool_calls") or ()),
            usage=(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
            delay=float(data.get("delay", 0.0)),
            error=ScriptedError(**error) if error else None,
            step=data.get("step"),
            model=data.get("model"),
            repeat=bool(data.get("repeat", False)),
        )

    def matches(self, model: str, step: str) -> bool:
        return (self.step is None or self.step == step) and (
            self.model is None or self.model == model
        )


@dataclass
class Script:
    """The replies of a scripted provider; each call takes the first unused reply that matches it."""

    replies: list[ScriptedReply] = field(default_factory=list)
    path: Path | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[int] = set()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Script:
        """Read `{replies: [...]}` (or a bare list) from a .yaml/.yml/.json file."""
        file = Path(path)
        text = file.read_text(encoding="utf-8")
        if file.suffix == ".json":
            data = json.loads(text)
        else:
            from ruamel.yaml import YAML

            data = YAML(typ="safe", pure=True).load(text)
        items = data.get("replies", []) if isinstance(data, Mapping) else data
        return cls([ScriptedReply.from_dict(item) for item in items or []], path=file)

    @classmethod
    def of(cls, *replies: ScriptedReply | Mapping[str, Any]) -> Script:
        return cls(
            [r if isinstance(r, ScriptedReply) else ScriptedReply.from_dict(r) for r in replies]
        )

    def next_reply(self, model: str, step: str) -> ScriptedReply:
        with self._lock:
            for index, reply in enumerate(self.replies):
                if index not in self._used and reply.matches(model, step):
                    if not reply.repeat:
                        self._used.add(index)
                    return reply
        where = f" in {self.path}" if self.path else ""
        raise LookupError(f"no scripted reply left for step '{step}' (model {model}){where}")
