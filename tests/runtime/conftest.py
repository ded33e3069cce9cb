"""Runtime tests: one isolated Prefect home per session (its embedded server starts once)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before anything imports prefect: Prefect reads its settings at import time. The directory
# lives for the whole session so the embedded server's SQLite database is created only once.
_PREFECT_HOME = tempfile.mkdtemp(prefix="codexflow-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
