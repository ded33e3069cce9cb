"""`python -m codexflow`."""

import os
import sys

# `python -m` puts the current directory first on sys.path; in the `codexflow init` layout that
# is the workspace, where an agent could have written `typer.py` or `yaml.py`. codexflow itself
# is already imported (its own modules come from its package path), so the entry is dropped.
if sys.path and not sys.flags.safe_path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from codexflow.cli import run

run()
