"""The result store: one JSON file per cache key under `<state_dir>/cache/`, written atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from codexflow.agents.step_io import StepResult


def _canonical(value: Any) -> str:
    # sort_keys + default=repr: the same content always hashes the same, even with odd values.
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr
    )


def cache_key(step_hash: str, prompt: str, context: dict[str, Any], item: Any) -> str:
    """sha256 of everything that decides a unit's answer beyond the step definition itself."""
    material = _canonical({"step": step_hash, "prompt": prompt, "context": context, "item": item})
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def write_json_atomic(path: Path, data: Any, *, root: Path | None = None) -> None:
    """Write via a temp file in the same directory + rename: readers never see half a file,
    and a process killed mid-write leaves at worst a stray temp file, never a lock.

    Beneath `root` (the state dir; the file's directory when None) no symlink is followed, so a
    link planted in the state dir cannot redirect the write onto another file. Text that is not
    valid Unicode (lone surrogates) is kept as JSON escapes rather than failing the run.

    No fsync: a killed process loses nothing that reached the page cache, and after a power
    loss an empty or torn entry reads as absent (the step runs again). fsync cost ~4 ms per
    step here, more than the rest of the scheduler's work for it."""
    from codexflow.tools.confine import write_file_beneath

    base = Path(root) if root is not None else path.parent
    base.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, ensure_ascii=False, indent=1, default=repr)
    relative = path.relative_to(base).as_posix()
    write_file_beneath(base, relative, text.encode("utf-8", "backslashreplace"))


class ResultStore:
    """Cached step results, shared by every run that uses the same state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "cache"

    def _path(self, key: str) -> Path:
        # Two-level fan-out keeps directories small for big runs.
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> StepResult | None:
        from codexflow.tools.confine import read_file_beneath

        relative = self._path(key).relative_to(self.state_dir).as_posix()
        try:
            data = json.loads(read_file_beneath(self.state_dir, relative).decode("utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None  # absent, unreadable or behind a symlink: the unit simply runs again
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        return StepResult(
            output=data.get("output"),
            model=data.get("model", ""),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            cost_usd=float(data.get("cost_usd", 0.0)),
            llm_calls=int(data.get("llm_calls", 0)),
            tool_calls=int(data.get("tool_calls", 0)),
            records=list(data.get("records", [])),
        )

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, unit_id: str, result: StepResult) -> None:
        write_json_atomic(
            self._path(key),
            root=self.state_dir,
            data={
                "key": key,
                "unit": unit_id,
                "output": result.output,
                "model": result.model,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "cost_usd": result.cost_usd,
                "llm_calls": result.llm_calls,
                "tool_calls": result.tool_calls,
                "records": result.records,
            },
        )
