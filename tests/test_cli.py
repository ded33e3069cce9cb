"""The command line: exit codes, JSON output, the schema and the starter spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codexflow.cli import main
from codexflow.spec import load_spec
from codexflow.spec.schema import json_schema

ROOT = Path(__file__).resolve().parents[1]


def test_validate_accepts_the_examples(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = sorted(str(p.relative_to(repo_root)) for p in (repo_root / "specs").glob("*.yaml"))
    assert main(["validate", *specs]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") == len(specs)


def test_validate_json_for_machines(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["validate", "--json", "specs/refactor.yaml", "tests/fixtures/specs/invalid/cycle.yaml"]
    )
    assert code == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    good, bad = report["files"]
    assert good == {"path": "specs/refactor.yaml", "valid": True, "name": "refactor", "issues": []}
    assert bad["issues"][0]["line"] == 8 and bad["issues"][0]["loc"] == "tasks.write.depends_on"
    assert "write -> check -> fix -> write" in bad["issues"][0]["message"]


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_init_writes_a_spec_that_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "my-swarm.yaml"
    assert main(["init", str(target)]) == 0
    spec = load_spec(target)
    assert spec.name == "my-swarm"
    assert (tmp_path / ".codexflow" / "swarm.schema.json").exists()
    assert main(["init", str(target)]) == 2  # never overwrites without --force
    assert main(["init", str(target), "--force"]) == 0


@pytest.mark.parametrize(
    "command", [["validate", "specs/refactor.yaml"], ["plan", "specs/refactor.yaml"]]
)
def test_validate_and_plan_import_no_heavy_dependency(command: list[str]) -> None:
    """They must start fast: prefect, litellm and chromadb stay unimported."""
    code = (
        "import sys\n"
        "from codexflow.cli import main\n"
        f"assert main({command!r}) == 0\n"
        "heavy = [m for m in ('prefect', 'litellm', 'chromadb', 'sqlmodel') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_console_script_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: codexflow/v1\nname: x\n")
    result = subprocess.run(
        [sys.executable, "-m", "codexflow", "validate", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "missing required key `agents`" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_reports_the_protection_here(capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    # The fact, asked of bubblewrap itself: can it start a sandbox here?
    bwrap = shutil.which("bwrap")
    works = (
        bwrap is not None
        and subprocess.run(
            [bwrap, "--unshare-net", "--ro-bind", "/", "/", "true"], capture_output=True
        ).returncode
        == 0
    )
    expected = 0 if works else 1
    assert main(["doctor", "--json"]) == expected
    report = json.loads(capsys.readouterr().out)
    assert {"bwrap", "openat2", "path_resolution", "process_limit", "user_namespace", "seccomp",
            "memory_cgroup"} <= set(report)  # fmt: skip
    assert main(["doctor"]) == expected
    out = capsys.readouterr().out
    assert "sandbox:" in out
    for label in ("user namespace:", "seccomp:", "memory cgroup:"):
        line = next(line for line in out.splitlines() if label in line)
        assert line.startswith(("present", "missing"))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"codexflow {version('codexflow')}"
