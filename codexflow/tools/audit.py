"""The audit trail of every tool call: in memory, and appended to the run's audit.jsonl as it happens."""

from __future__ import annotations

import hashlib
import json
import re
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


# Run ids name a directory under the state dir; anything else is not written there.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def record_line(entry: AuditRecord) -> bytes:
    """One JSON line; text that is not valid Unicode (lone surrogates) stays as JSON escapes."""
    text = json.dumps(asdict(entry), ensure_ascii=False, default=str)
    return (text + "\n").encode("utf-8", "backslashreplace")


class AuditLog:
    """Append-only list of AuditRecord, safe to share between the threads of one run.

    With a `state_dir`, every record is also appended at once (one write, no buffering) to
    `<state_dir>/runs/<run_id>/audit.jsonl`, beneath the state dir and following no symlink: the
    trail is on disk even when the run is killed right after the call.
    """

    def __init__(self, state_dir: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._records: list[AuditRecord] = []
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.write_errors = 0

    def record(self, entry: AuditRecord) -> None:
        with self._lock:
            self._records.append(entry)
            if self.state_dir is not None:
                self._append(entry)

    def _append(self, entry: AuditRecord) -> None:
        from codexflow.tools.confine import append_file_beneath

        run_id = entry.run_id if _RUN_ID.match(entry.run_id) else "invalid-run-id"
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            append_file_beneath(
                self.state_dir,  # type: ignore[arg-type]
                f"runs/{run_id}/audit.jsonl",
                record_line(entry),
            )
        except OSError:
            # The call itself already happened; losing its line must not end the run.
            self.write_errors += 1

    def records(self) -> list[AuditRecord]:
        """A snapshot copy, in call order."""
        with self._lock:
            return list(self._records)

    def write_jsonl(self, path: str | Path) -> None:
        """Write one JSON object per record (a copy of the whole trail)."""
        with open(path, "wb") as out:
            for entry in self.records():
                out.write(record_line(entry))
