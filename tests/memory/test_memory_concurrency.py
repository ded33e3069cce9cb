"""Several processes on one memory: no lost update, no lock error, no torn transaction."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from codexflow.memory import Memory, MemoryConfig

WORKER = Path(__file__).with_name("memory_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return out, err


def open_memory(directory: Path) -> Memory:
    return Memory(MemoryConfig.under(directory, namespace="load", embedding="hash"))


def test_four_processes_of_read_modify_write_lose_nothing(tmp_path: Path) -> None:
    open_memory(tmp_path).close()  # a new database opened at once: the vector test does that
    workers = [start("counter", str(tmp_path), "300") for _ in range(4)]
    errors = [finish(worker)[1] for worker in workers]
    assert not any("database is locked" in err for err in errors)
    assert open_memory(tmp_path).get("counter") == "1200"


def test_killing_a_writer_mid_transaction_keeps_the_database_whole(tmp_path: Path) -> None:
    batch = 400
    for _ in range(20):
        worker = start("crash", str(tmp_path), str(batch))
        assert worker.stdout is not None
        for line in worker.stdout:  # bounded: the worker prints `inside` within its first batch
            if line.startswith("inside"):
                break
        os.kill(worker.pid, signal.SIGKILL)
        worker.communicate(timeout=60)
        assert worker.returncode == -signal.SIGKILL
    connection = sqlite3.connect(tmp_path / "memory.db")
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (rows,) = connection.execute("SELECT count(*) FROM events WHERE run_id='crash'").fetchone()
    finally:
        connection.close()
    assert rows % batch == 0  # only whole transactions: a killed one left nothing behind


def test_four_processes_writing_vectors_at_once_lose_no_id(tmp_path: Path) -> None:
    per_writer = 40
    workers = [start("vectors", str(tmp_path), str(who), str(per_writer)) for who in range(4)]
    for worker in workers:
        out, err = finish(worker)
        assert "Traceback" not in err and out.strip() == "done"
    memory = open_memory(tmp_path)
    expected = {f"{who}-{index}" for who in range(4) for index in range(per_writer)}
    assert set(memory.vectors.keys("load", memory.embedder.id)) == expected
    assert {entry.key for entry in memory.entries(namespace="load")} == expected
    # Each vector is in the index: its own text finds it first (cosine 1).
    for who, index in ((0, 0), (1, 17), (2, 39), (3, 21)):
        text = f"{who}-{index}: note {index} from writer {who} token{who}x{index}"
        best = memory.search(text, limit=1)[0]
        assert (best.key, best.score) == (f"{who}-{index}", 1.0)
