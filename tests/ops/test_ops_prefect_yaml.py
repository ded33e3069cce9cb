"""prefect.yaml: a deployment per example spec, each schedule the spec's, and `prefect deploy --all`
registers them on a real server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ops_support import ROOT, PrefectServer
from ruamel.yaml import YAML

from codexflow.spec import load_spec

SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def deployments() -> list[dict]:
    return list(YAML(typ="safe").load((ROOT / "prefect.yaml").read_text())["deployments"])


def test_prefect_yaml_has_a_deployment_per_spec_with_its_schedule() -> None:
    by_spec = {d["parameters"]["spec"]: d for d in deployments()}
    assert sorted(by_spec) == [f"specs/{p.name}" for p in SPECS]
    for path in SPECS:
        spec = load_spec(path)
        entry = by_spec[f"specs/{path.name}"]
        assert entry["name"] == spec.name
        assert entry["entrypoint"] == "flows/apply_spec.py:apply_spec"
        assert entry["work_pool"]["name"] == "codexflow"
        assert f"spec:{spec.name}" in entry["tags"]
        wanted = (
            [{"cron": spec.schedule.cron, "timezone": spec.schedule.timezone, "active": True}]
            if spec.schedule
            else []
        )
        assert entry["schedules"] == wanted, spec.name
    assert any(d["schedules"] for d in deployments())  # refactor's nightly cron


@pytest.mark.slow
def test_prefect_deploy_all_registers_every_deployment(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    project = tmp_path / "checkout"  # a copy: `prefect deploy` runs in the project's directory
    project.mkdir()
    for name in ("prefect.yaml", "flows", "specs"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name)
        else:
            shutil.copy(source, project / name)
    env = prefect_server.env(tmp_path / "home")
    create = subprocess.run(
        [sys.executable, "-m", "prefect", "work-pool", "create", "codexflow", "--type", "process",
         "--overwrite"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert create.returncode == 0, create.stdout + create.stderr
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for entry in deployments():
        found = prefect_server.get(f"/deployments/name/apply-spec/{entry['name']}")
        assert found["work_pool_name"] == "codexflow"
        assert found["parameters"]["spec"] == entry["parameters"]["spec"]
        assert found["entrypoint"] == "flows/apply_spec.py:apply_spec"
        crons = [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in found["schedules"]]
        assert crons == [(s["cron"], s["timezone"]) for s in entry["schedules"]]
        # The worker runs in the directory `prefect deploy` ran in, where the spec paths resolve.
        assert found["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}
        ]
