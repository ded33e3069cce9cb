"""Shared memory on PostgreSQL (`memory.database: postgresql+psycopg://...`), the way to share
it across machines: the same promises as on SQLite, on a real server started for the session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codexflow.memory import Memory, MemoryConfig
from tests.memory.test_memory_concurrency import WORKER

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database(postgres_url: str, request: pytest.FixtureRequest) -> str:
    """An empty database of its own per test, on the session's server."""
    from sqlalchemy import create_engine, text

    name = "t_" + request.node.name.lower().replace("-", "_")[:50]
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def test_four_processes_of_read_modify_write_lose_nothing_on_postgres(
    tmp_path: Path, database: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMORY_WORKER_DATABASE": database}
    command = [sys.executable, str(WORKER), "counter", str(tmp_path), "300"]
    workers = [
        subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0 and out.strip() == "done", err
    memory = Memory(MemoryConfig(database, str(tmp_path / "chroma"), namespace="load",
                                 embedding="hash"))  # fmt: skip
    try:
        assert memory.get("counter") == "1200"  # as the SQLite test reads it
    finally:
        memory.close()


def test_a_value_an_agent_stores_in_one_apply_is_read_by_an_agent_in_the_next(
    tmp_path: Path, database: str
) -> None:
    spec = tmp_path / "notebook.yaml"
    text = (ROOT / "specs" / "notebook.yaml").read_text()
    spec.write_text(text.replace("memory:\n", f"memory:\n  database: {database}\n", 1))
    script = ROOT / "specs" / "scripted" / "notebook.yaml"

    def apply(state: Path) -> dict[str, str]:
        command = [
            sys.executable, "-m", "codexflow", "apply", str(spec), "--model", "scripted/demo",
            "--script", str(script), "--state-dir", str(state), "--no-prefect",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        run_dir = done.stdout.split("run record: ", 1)[1].split()[0]
        calls = (Path(run_dir) / "audit.jsonl").read_text().splitlines()
        return {call["tool"]: call["result"] for call in map(json.loads, calls)}

    first = apply(tmp_path / "one")
    assert first["memory_get"] == "no memory under 'lesson'"
    assert first["memory_store"] == "stored lesson"
    # Another process and another state dir: only the PostgreSQL database is shared.
    second = apply(tmp_path / "two")
    assert second["memory_get"].startswith("Tag a release only after")
    assert not (tmp_path / "one" / "memory.db").exists()  # nothing went to SQLite
