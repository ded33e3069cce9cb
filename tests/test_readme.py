"""The README's example output is what codexflow really prints, for a spec that exists."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def console_blocks(text: str) -> list[tuple[list[str], list[str]]]:
    """Each ```console block of the README: its `$ ` command and the lines it shows."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, flags=re.DOTALL):
        first, *rest = body.splitlines()
        assert first.startswith("$ codexflow "), first
        blocks.append((shlex.split(first[2:]), rest))
    return blocks


def test_the_readme_shows_real_output_of_specs_that_exist() -> None:
    blocks = console_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "the README shows an example run"
    env = os.environ | {"COLUMNS": "300", "NO_COLOR": "1"}
    for command, shown in blocks:
        for word in command[1:]:
            if word.endswith(".yaml"):
                assert (ROOT / word).is_file(), f"the README names {word}, which does not exist"
        result = subprocess.run(
            [sys.executable, "-m", "codexflow", *command[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.stdout.splitlines() == shown, result.stdout + result.stderr
