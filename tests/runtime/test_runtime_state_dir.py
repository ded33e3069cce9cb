"""The `codexflow init` layout (workspace `.`, state in `./.codexflow`): an agent that plants
configuration for the next run (Prefect settings in the workspace, a logging config in the
Prefect home, symlinks in runs/ and cache/, modules on a `python -m` path) gets nothing of it
executed or followed when the project is applied again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CANARY = "CANARY-state-dir-3c1e"

SPEC = """\
apiVersion: codexflow/v1
name: planter
workspace: .
agents:
  planter:
    role: coder
    tools: [read_file, write_file, list_files, sh, count]
tools:
  sh:
    kind: shell
    command: [sh, -c, "{{ script }}"]
    args: {script: {type: string}}
  count:
    kind: shell
    command: [echo, "{{ n }}"]
    args: {n: {type: number}}
tasks:
  plant:
    agent: planter
    prompt: Leave something for the next run.
"""


def _logging_yml(sentinel: Path) -> str:
    # A dictConfig whose handler factory is a callable: it runs when the config is loaded.
    return (
        "version: 1\n"
        "handlers:\n"
        "  evil:\n"
        "    (): subprocess.call\n"
        f"    args: [touch, {sentinel}]\n"
        "root: {handlers: [evil]}\n"
    )


def _script(project: Path, sentinels: Path, host: Path) -> dict:
    evil = project / "evil-logging.yml"
    home = ".codexflow/prefect"
    calls = [
        # File tools into the state dir: Prefect's home, run records, the cache.
        ("write_file", {"path": f"{home}/logging.yml", "content": _logging_yml(sentinels / "home-logging")}),
        ("write_file", {"path": f"{home}/profiles.toml", "content": 'active = "evil"\n[profiles.evil]\nPREFECT_LOGGING_CONFIG_PATH = "' + str(evil) + '"\n'}),
        ("write_file", {"path": ".codexflow/runs/x/summary.json", "content": "{}"}),
        ("write_file", {"path": "./.codexflow/results/x", "content": "{}"}),
        ("write_file", {"path": f"{project}/.codexflow/prefect/x", "content": "x"}),
        ("read_file", {"path": ".codexflow/swarm.schema.json"}),
        ("list_files", {"path": ".codexflow"}),
        # Settings files Prefect reads from the current directory, and a logging config they name.
        ("write_file", {"path": "evil-logging.yml", "content": _logging_yml(sentinels / "cwd-logging")}),
        ("write_file", {"path": "prefect.toml", "content": f'[logging]\nconfig_path = "{evil}"\n[plugins]\nenabled = true\n[server.database]\nconnection_url = "sqlite+aiosqlite:///{host}/prefect.db"\n'}),
        ("write_file", {"path": ".env", "content": f"PREFECT_LOGGING_CONFIG_PATH={evil}\nPREFECT_PROFILES_PATH={project}/evil-profiles.toml\n"}),
        ("write_file", {"path": "pyproject.toml", "content": f'[tool.prefect.logging]\nconfig_path = "{evil}"\n'}),
        # Modules a `python -m` started in this directory would import first.
        *[
            ("write_file", {"path": f"{name}.py", "content": f"open({str(sentinels / name)!r}, 'w').write('ran')\n"})
            for name in ("uvicorn", "typer", "prefect", "sitecustomize", "usercustomize")
        ],
        # The shell: replace records and the cache with symlinks onto host files.
        ("sh", {"script": f"ln -sfn {host} .codexflow/cache; rm -rf .codexflow/runs; ln -s {host} .codexflow/runs; "
                          f"echo {CANARY} > .codexflow/prefect/logging.yml; ln -s {host}/target .codexflow/x; ls -la .codexflow"}),
        ("sh", {"script": "mv .codexflow .moved; mkdir .codexflow; echo done"}),
        # Model input that must be refused or recorded, never crash the run.
        ("count", {"n": float("-inf")}),
        ("count", '{"n": -Infinity}'),
        ("count", '{"n": NaN}'),
        ("write_file", '{"path": "lone.txt", "content": "a\\udc80b"}'),
        ("read_file", {"path": "lone\udc80.txt"}),
    ]  # fmt: skip
    tool_calls = [{"name": name, "arguments": args} for name, args in calls]
    return {
        "replies": [
            {"step": "plant", "tool_calls": tool_calls},
            {"step": "plant", "content": "planted", "repeat": True},
        ]
    }


def _apply(
    project: Path, script: Path, home: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "CI": os.environ.get("CI", ""),
    }
    # A plain `python -m`, which puts the current directory (the workspace) first on sys.path.
    command = [sys.executable, "-m", "codexflow", "apply", "swarm.yaml", "--model",
               "scripted/x", "--script", str(script), *extra]  # fmt: skip
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_nothing_an_agent_plants_runs_or_redirects_the_next_apply(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "swarm.yaml").write_text(SPEC)
    (project / "README.md").write_text("# project\n")
    sentinels = tmp_path / "sentinels"
    sentinels.mkdir()
    host = tmp_path / "host"  # host files a redirected write would land on
    host.mkdir()
    (host / "target").write_text(CANARY)
    script = tmp_path / "script.json"  # JSON: -Infinity and lone surrogates survive the load
    script.write_text(json.dumps(_script(project, sentinels, host)))
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    # The state dir exists before the agent runs (as after `codexflow init`).
    (project / ".codexflow").mkdir()
    (project / ".codexflow" / "swarm.schema.json").write_text("{}")

    first = _apply(project, script, user_home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "internal error" not in first.stdout + first.stderr
    # The agent could write its decoys in the workspace, never in the state dir.
    assert (project / "prefect.toml").exists() and (project / "uvicorn.py").exists()
    state = project / ".codexflow"
    assert not (state / "prefect" / "logging.yml").exists()
    assert not (state / "prefect" / "profiles.toml").exists()
    assert not (state / "runs" / "x").exists() and not (state / "x").exists()
    for link in (state / "results", state / "runs"):
        assert link.is_dir() and not link.is_symlink()
    assert not (project / ".moved").exists()

    (run_dir,) = [p for p in (state / "runs").iterdir() if p.is_dir()]
    lines = (run_dir / "audit.jsonl").read_bytes().decode("utf-8").splitlines()
    audit = [json.loads(line) for line in lines]
    calls = _script(project, sentinels, host)["replies"][0]["tool_calls"]
    # Every call is in the trail, in order, whatever its content (the lone surrogate included).
    assert [entry["tool"] for entry in audit] == [call["name"] for call in calls]
    for call, entry in zip(calls, audit, strict=True):
        if call["name"] != "sh" and ".codexflow" in json.dumps(call["arguments"]):
            assert entry["outcome"] == "refused", (call, entry)
            assert "state directory" in entry["result"]
    counts = [e for e in audit if e["tool"] == "count"]
    assert [e["outcome"] for e in counts] == ["error"] * 3
    assert not any(
        "inf" in e["result"].split("exit code")[-1] for e in counts if e["outcome"] == "ok"
    )

    second = _apply(project, script, user_home, "--fresh")
    assert second.returncode == 0, second.stdout + second.stderr
    for output in (first, second):
        assert "Traceback" not in output.stdout + output.stderr
    assert sorted(p.name for p in sentinels.iterdir()) == []  # nothing planted ever ran
    assert sorted(p.name for p in host.iterdir()) == ["target"]  # nothing written through links
    assert (host / "target").read_text() == CANARY
    # Prefect's own files are where codexflow put them, not where the planted settings said.
    assert (state / "prefect").is_dir()
    assert not (user_home / ".prefect").exists()


PIN_PROBE = """
import json, sys
from pathlib import Path
from codexflow.runtime.prefect_env import configure_prefect
configure_prefect(Path(sys.argv[1]))
from prefect.settings import Settings, get_current_settings
out = {}
for name, settings in (("current", get_current_settings()), ("new", Settings())):
    out[name] = {
        "api_url": settings.api.url,
        "config_path": str(settings.logging.config_path),
        "level": settings.logging.level,
        "db": settings.server.database.connection_url.get_secret_value()
        if settings.server.database.connection_url else None,
        "storage": str(settings.results.local_storage_path),
        "home": str(settings.home),
        "plugins": settings.plugins.enabled,
    }
print(json.dumps(out))
"""


def test_prefect_settings_are_pinned_against_files_in_the_current_directory(tmp_path: Path) -> None:
    cwd = tmp_path / "workspace"
    cwd.mkdir()
    evil = tmp_path / "evil"
    (cwd / "prefect.toml").write_text(
        f'[api]\nurl = "http://evil.invalid/api"\n[logging]\nlevel = "DEBUG"\n'
        f'config_path = "{evil}.yml"\n[plugins]\nenabled = true\n'
        f'[server.database]\nconnection_url = "sqlite+aiosqlite:///{evil}.db"\n'
    )
    (cwd / ".env").write_text(
        f"PREFECT_RESULTS_LOCAL_STORAGE_PATH={evil}\nPREFECT_PROFILES_PATH={evil}.toml\n"
    )
    (cwd / "pyproject.toml").write_text('[tool.prefect.api]\nurl = "http://evil2.invalid/api"\n')
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    state = tmp_path / "state"
    done = subprocess.run([sys.executable, "-P", "-c", PIN_PROBE, str(state)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for seen in json.loads(done.stdout.splitlines()[-1]).values():
        assert seen["api_url"] is None and seen["plugins"] is False
        assert seen["level"] == "WARNING"
        assert seen["config_path"].endswith("prefect/logging/logging.yml")  # the packaged one
        assert str(evil) not in json.dumps(seen)
        assert seen["home"] == str(state / "prefect")
    # Control: plain Prefect in that directory takes the planted values.
    control = subprocess.run(
        [sys.executable, "-P", "-c", "from prefect.settings import Settings; print(Settings().api.url)"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert control.stdout.strip() == "http://evil.invalid/api"


def test_records_and_cache_refuse_planted_links(tmp_path: Path) -> None:
    from codexflow.agents.step_io import StepResult
    from codexflow.runtime.record import RunRecord
    from codexflow.runtime.store import ResultStore, write_json_atomic

    state = tmp_path / "state"
    state.mkdir()
    host = tmp_path / "host"
    host.mkdir()
    (host / "keep.json").write_text(CANARY)
    (state / "runs").symlink_to(host)
    with pytest.raises(OSError):
        RunRecord(state, "20261201-000000.000-abcdef")
    (state / "runs").unlink()
    (state / "results").symlink_to(host)
    store = ResultStore(state)
    key = "ab" + "0" * 62
    with pytest.raises(OSError):
        store.put(key, "u", StepResult(output="x", model="m"))
    forged = {
        "metadata": {"serializer": {"type": "json"}},
        "result": json.dumps({"output": "forged"}),
    }
    (host / key).write_text(json.dumps(forged))
    assert store.get(key) is None  # a planted entry behind a link is never read
    with pytest.raises(OSError):
        write_json_atomic(state / "results" / "x.json", {}, root=state)
    assert sorted(p.name for p in host.iterdir()) == sorted(["keep.json", key])
    assert (host / "keep.json").read_text() == CANARY
    # Text that is not valid Unicode is kept as JSON escapes, not a crash.
    (state / "results").unlink()
    write_json_atomic(state / "out.json", {"text": "lone \udc80"}, root=state)
    assert json.loads((state / "out.json").read_text()) == {"text": "lone \udc80"}
