"""A thread-safe, in-memory audit log of every tool call (a later issue moves it to the events table)."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["ok", "error", "refused"]


@dataclass(frozen=True)
class AuditRecord:
    """One tool call: who asked for what, how it ended, and the full result for the records."""

    run_id: str
    step_id: str
    agent: str
    tool: str
    arguments_sha256: str
    outcome: Outcome
    duration_ms: float
    result: str
    started_at: float


def hash_arguments(arguments: Any) -> str:
    """sha256 of the canonical JSON of the arguments (a raw string when they did not parse)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return hashlib.sha256(arguments.encode("utf-8", "surrogatepass")).hexdigest()
    canonical = json.dumps(
        arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class AuditLog:
    """Append-only list of AuditRecord, safe to share between the threads of one run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[AuditRecord] = []

    def record(self, entry: AuditRecord) -> None:
        with self._lock:
            self._records.append(entry)

    def records(self) -> list[AuditRecord]:
        """A snapshot copy, in call order."""
        with self._lock:
            return list(self._records)

    def write_jsonl(self, path: str | Path) -> None:
        """Write one JSON object per record."""
        with open(path, "w", encoding="utf-8") as out:
            for entry in self.records():
                out.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
