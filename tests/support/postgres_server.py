"""A throwaway PostgreSQL server on 127.0.0.1 for one test session: `initdb` into a temporary
directory, `postgres` on a free port, trust authentication for one role, gone at the end.

Debian's `postgresql` package (installed by `.ci/run`) puts its programs under
/usr/lib/postgresql/<version>/bin, outside PATH. PostgreSQL refuses to run as root: as root
the cluster belongs to the `postgres` system user the package creates."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port, stop_group

ROLE = "codexflow"


def postgres_bin() -> Path | None:
    """The directory holding `initdb` and `postgres`, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:  # often a symlink into the version's directory, which holds pg_isready too
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextlib.contextmanager
def running_postgres(directory: Path) -> Iterator[str]:
    """Yields a SQLAlchemy URL (`postgresql+psycopg://...`) of a fresh, empty database."""
    binaries = postgres_bin()
    if binaries is None:
        raise FileNotFoundError(
            "PostgreSQL's initdb was not found (Debian: apt-get install postgresql)"
        )
    data, sockets = directory / "data", directory / "sockets"
    for path in (directory, data, sockets):
        path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
        for path in (data, sockets):
            shutil.chown(path, "postgres")
    log = directory / "server.log"
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", ROLE, "--auth=trust", "-E", "UTF8"]
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True, timeout=300)
    port = free_port()
    server = [
        str(binaries / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
        "-k", str(sockets), "-c", "fsync=off", "-c", "full_page_writes=off",
        "-c", "synchronous_commit=off", "-c", "max_connections=50",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            _as_server_user(server), stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        ready = [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", ROLE]
        for _ in range(600):  # bounded: up to ~60 s of 0.1 s checks on a loaded machine
            if process.poll() is not None:
                raise RuntimeError(f"postgres exited: {log.read_text(errors='replace')[-2000:]}")
            if subprocess.run(ready, capture_output=True, timeout=30).returncode == 0:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)
        else:
            raise RuntimeError(f"postgres did not start: {log.read_text(errors='replace')[-2000:]}")
        yield f"postgresql+psycopg://{ROLE}@127.0.0.1:{port}/postgres"
    finally:
        # SIGINT to the whole group (runuser and postgres): "fast" shutdown, which does not
        # wait for pooled connections a test's engine still holds.
        stop_group(process, signal.SIGINT, wait=60)
