"""`python -m codexflow`."""

from codexflow.cli import run

run()
