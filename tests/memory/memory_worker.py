"""A separate writer process for the memory concurrency tests (run as a script).

counter DIR N       N read-modify-write increments of one entry through Memory.update
vectors DIR WHO N   N entries with vectors, keys WHO-0 .. WHO-(N-1)
crash DIR B         transactions of B rows each, forever; prints `inside` mid-transaction
                    (the test kills it there) and `committed K` after each commit
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from codexflow.memory import Memory, MemoryConfig
from codexflow.memory.db import make_engine, migrate, transaction
from codexflow.memory.tables import EventRow


def config(directory: str) -> MemoryConfig:
    """Memory under DIR; its database at MEMORY_WORKER_DATABASE when set (e.g. PostgreSQL)."""
    default = MemoryConfig.under(Path(directory), namespace="load", embedding="hash")
    database = os.environ.get("MEMORY_WORKER_DATABASE") or default.database
    return MemoryConfig(database, default.vectors, namespace="load", embedding="hash")


def counter(directory: str, count: int) -> None:
    memory = Memory(config(directory))
    for _ in range(count):
        memory.update("counter", lambda value: (value or 0) + 1)
    print("done", flush=True)


def vectors(directory: str, who: str, count: int) -> None:
    memory = Memory(config(directory))
    for index in range(count):
        memory.put(f"{who}-{index}", f"note {index} from writer {who} token{who}x{index}")
    print("done", flush=True)


def crash(directory: str, batch: int) -> None:
    engine = make_engine(config(directory).database)
    migrate(engine)
    committed = 0
    while True:
        with transaction(engine, write=True) as session:
            for row in range(batch):
                session.add(
                    EventRow(name="load", run_id="crash", payload={"n": row}, time=time.time())
                )
                if row == batch // 4:
                    session.flush()  # rows are in the database file's pages now, uncommitted
                    print("inside", flush=True)
        committed += 1
        print(f"committed {committed}", flush=True)


if __name__ == "__main__":
    mode, directory, *rest = sys.argv[1:]
    if mode == "counter":
        counter(directory, int(rest[0]))
    elif mode == "vectors":
        vectors(directory, rest[0], int(rest[1]))
    elif mode == "crash":
        crash(directory, int(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode}")
