"""The result store: Prefect result records (JSON) under `<state_dir>/results/`, one per cache key.

The same files are Prefect's cache (the task runs' result storage: a re-apply shows `Cached`
task runs) and what `codexflow plan` and the `--no-prefect` engine read and write, without
importing Prefect. The records are plain JSON end to end: the serializer has no object
encoder or decoder, so a model's answer shaped like `{"__class__": "mod.Cls", ...}` can never
make a cache read import anything; records whose metadata names another serializer are ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from codexflow.agents.step_io import StepResult

RESULTS_DIR = "results"
# The JSON serializer as Prefect describes it in a record's metadata (prefect.serializers).
SERIALIZER: dict[str, Any] = {
    "type": "json",
    "jsonlib": "json",
    "object_encoder": None,
    "object_decoder": None,
    "dumps_kwargs": {},
    "loads_kwargs": {},
}


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
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=1, default=repr), root=root)


def write_text_atomic(path: Path, text: str, *, root: Path | None = None) -> None:
    from codexflow.tools.confine import write_file_beneath

    base = Path(root) if root is not None else path.parent
    base.mkdir(parents=True, exist_ok=True)
    relative = path.relative_to(base).as_posix()
    write_file_beneath(base, relative, text.encode("utf-8", "backslashreplace"))


def result_to_json(result: StepResult) -> dict[str, Any]:
    """What a unit's task run returns and Prefect persists: plain JSON values only."""
    data = {
        "output": result.output,
        "model": result.model,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_usd": result.cost_usd,
        "cost_known": result.cost_known,
        "llm_calls": result.llm_calls,
        "tool_calls": result.tool_calls,
        "records": result.records,
    }
    # Round-trip through JSON: whatever a tool or model produced (tuples, odd objects) is stored
    # exactly as a later run will read it back, so a cached run and a fresh one see the same.
    clean: dict[str, Any] = json.loads(json.dumps(data, ensure_ascii=False, default=repr))
    return clean


def result_from_json(data: Any) -> StepResult | None:
    if not isinstance(data, dict):
        return None
    try:
        return StepResult(
            output=data.get("output"),
            model=str(data.get("model", "")),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            cost_usd=float(data.get("cost_usd", 0.0)),
            cost_known=bool(data.get("cost_known", True)),
            llm_calls=int(data.get("llm_calls", 0)),
            tool_calls=int(data.get("tool_calls", 0)),
            records=list(data.get("records", [])),
        )
    except (TypeError, ValueError):
        return None


class ResultStore:
    """Cached unit results, shared by every run that uses the same state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / RESULTS_DIR

    def path(self, key: str) -> Path:
        # Flat, as Prefect's LocalFileSystem result storage lays them out: the key is the name.
        return self.root / key

    def get(self, key: str) -> StepResult | None:
        from codexflow.tools.confine import read_file_beneath

        try:
            relative = self.path(key).relative_to(self.state_dir).as_posix()
            record = json.loads(read_file_beneath(self.state_dir, relative).decode("utf-8"))
            metadata = record["metadata"]
            if metadata.get("serializer", {}).get("type") != "json":
                return None  # not written by codexflow: never decoded with another serializer
            payload = record["result"]
            data = json.loads(payload) if isinstance(payload, str) else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, torn, foreign or behind a symlink: the unit simply runs again
        return result_from_json(data)

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, unit_id: str, result: StepResult) -> None:
        """Write a record exactly as Prefect's result store would (read back as `Cached`)."""
        record = {
            "metadata": {
                "storage_key": str(self.path(key)),
                "expiration": None,
                "serializer": SERIALIZER,
                "prefect_version": _prefect_version(),
                "storage_block_id": None,
            },
            "result": json.dumps(result_to_json(result), ensure_ascii=False),
        }
        text = json.dumps(record, ensure_ascii=False)
        write_text_atomic(self.path(key), text, root=self.state_dir)


def _prefect_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prefect")
    except PackageNotFoundError:  # pragma: no cover - prefect is a dependency
        return "3"
