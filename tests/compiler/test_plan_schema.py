"""`plan -f json` carries a version and matches the published schemas/plan.schema.json."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from codexflow.cli import main
from codexflow.compiler.plan_schema import PLAN_FORMAT_VERSION, PLAN_SCHEMA_FILE, plan_schema

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_plan_schema_is_fresh() -> None:
    assert json.loads(PLAN_SCHEMA_FILE.read_text(encoding="utf-8")) == plan_schema()


@pytest.mark.parametrize("name", ["refactor", "docs", "research", "triage"])
def test_plan_json_has_a_version_and_matches_the_schema(
    name: str, repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", f"specs/{name}.yaml", "-f", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == PLAN_FORMAT_VERSION
    published = json.loads(PLAN_SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.validate(data, published)
    # The schema constrains: a plan without its version, or with a step of an unknown kind,
    # is refused.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in data.items() if k != "version"}, published)
    broken = json.loads(json.dumps(data))
    broken["steps"][0]["kind"] = "teleport"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, published)
