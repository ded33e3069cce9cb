"""The embedded Prefect server's process: uvicorn as `python -m uvicorn` runs it, plus a thread
that ends the server when the apply that started it ends, however that ends (`kill -9`
included).

    python -m codexflow.runtime.server_lifeline FD [uvicorn arguments...]

FD is the read end of a pipe whose only write end the apply holds (runtime/prefect_env.py);
the kernel closes that end when the apply's process ends, and the read here returns. Then
the server stops as Prefect's own stop does (SIGTERM), and exits if it has not within 5 s.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

GRACE_SECONDS = 5.0


def _watch(fd: int) -> None:
    while os.read(fd, 4096):  # nothing is ever written: this returns b"" at the end
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    os._exit(1)


def main() -> None:
    fd = int(sys.argv.pop(1))
    threading.Thread(target=_watch, args=(fd,), name="codexflow-lifeline", daemon=True).start()
    sys.argv[0] = "uvicorn"
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
