"""Checks made before any token is spent: warnings for models and providers litellm does not
know (never fatal), and what plan does with prices it does not know."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codexflow.cli import main
from codexflow.spec import load_spec_source
from codexflow.spec.catalog import model_prices

ROOT = Path(__file__).resolve().parents[2]
VALID = sorted((ROOT / "tests/fixtures/specs/valid").glob("*.yaml"))
UNKNOWN = "tests/fixtures/specs/valid/unknown-provider-and-model.yaml"
LOCAL = "tests/fixtures/specs/valid/local-openai-server.yaml"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_warnings_of_valid_specs(path: Path, repo_root: Path, snapshot) -> None:
    _, source = load_spec_source(path.relative_to(repo_root))
    assert all(issue.severity == "warning" for issue in source.warnings)
    assert [issue.render() for issue in source.warnings] == snapshot


def test_unknown_providers_and_models_warn_with_the_closest_known(repo_root: Path) -> None:
    _, source = load_spec_source(UNKNOWN)
    by_loc = {issue.loc: issue for issue in source.warnings}
    assert set(by_loc) == {"defaults.model", "agents.coder.model", "agents.coder.fallbacks[0]"}
    assert "`opnai` is not a provider litellm knows" in by_loc["defaults.model"].message
    assert "'openai'" in by_loc["defaults.model"].hint
    assert "`gpt-4o-mni`" in by_loc["agents.coder.model"].message
    assert "'gpt-4o-mini'" in by_loc["agents.coder.model"].hint
    assert "`local`" in by_loc["agents.coder.fallbacks[0]"].message


def test_a_local_server_and_own_prefixes_do_not_warn(repo_root: Path) -> None:
    _, source = load_spec_source(LOCAL)
    assert source.warnings == []


def test_validate_prints_warnings_but_exits_0(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", UNKNOWN]) == 0
    out = capsys.readouterr().out
    assert f"{UNKNOWN}:3:19: warning: defaults.model:" in out
    assert f"ok {UNKNOWN}" in out
    assert main(["validate", "--json", UNKNOWN]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True
    assert {i["severity"] for i in report["files"][0]["issues"]} == {"warning"}


def test_a_prefix_litellm_does_not_know_is_not_priced_as_another() -> None:
    assert model_prices("openai/gpt-4o-mini") is not None
    assert model_prices("opnai/gpt-4o-mini") is None
    assert model_prices("anthropic/gpt-4o-mini") is None  # gpt-4o-mini is OpenAI's


def test_plan_says_what_it_cannot_price_and_which_budget_cannot_hold(
    tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    text = (ROOT / UNKNOWN).read_text(encoding="utf-8") + "budget: {max_usd: 2.0}\n"
    spec.write_text(text, encoding="utf-8")
    assert main(["plan", str(spec)]) == 0
    captured = capsys.readouterr()
    assert "warning: defaults.model" in captured.err
    out = " ".join(captured.out.split())
    assert "openai/gpt-4o-mni: 1–20 calls, cost unknown" in out
    assert "budget: max_usd $2.00 cannot be enforced for openai/gpt-4o-mni" in out
    assert main(["plan", str(spec), "-f", "json"]) == 0
    estimate = json.loads(capsys.readouterr().out)["estimate"]
    assert estimate["unpriced_models"] == ["openai/gpt-4o-mni"]
    assert estimate["max_usd_enforceable"] is False


def test_plan_prices_a_model_at_its_declared_price(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", LOCAL, "-f", "json"]) == 0
    estimate = json.loads(capsys.readouterr().out)["estimate"]
    local = estimate["models"]["openai/my-local-model"]
    assert local["priced"] and local["usd"]["high"] > local["usd"]["low"] > 0
    assert estimate["max_usd_enforceable"] is True
