"""System prompts: presets for the built-in roles, instructions override them, goals always count."""

from __future__ import annotations

import pytest
from agent_fakes import FakeProvider, make_spec, make_step, reply

from codexflow.agents.executor import run_agent_step
from codexflow.agents.presets import PRESETS, preset_for, system_prompt
from codexflow.spec.models import PRESET_ROLES, AgentSpec


def test_every_preset_role_of_the_spec_has_a_prompt() -> None:
    assert set(PRESETS) == set(PRESET_ROLES)


@pytest.mark.parametrize("role", PRESET_ROLES)
def test_preset_roles_get_their_preset(role: str) -> None:
    prompt = system_prompt("a1", AgentSpec(role=role.upper()))
    assert PRESETS[role] in prompt
    assert "`a1`" in prompt
    assert "final result" in prompt


def test_instructions_replace_the_preset_and_the_goal_is_still_appended() -> None:
    agent = AgentSpec(role="coder", goal="Ship the parser.", instructions="You write Rust only.")
    prompt = system_prompt("rusty", agent)
    assert PRESETS["coder"] not in prompt
    assert "You write Rust only." in prompt
    assert "Your goal: Ship the parser." in prompt


def test_other_roles_get_a_prompt_from_role_and_goal() -> None:
    prompt = system_prompt("ana", AgentSpec(role="data analyst", goal="Find the churn drivers."))
    assert preset_for("data analyst") is None
    assert "You are a data analyst." in prompt
    assert "Your goal: Find the churn drivers." in prompt
    assert "You are an editor." in system_prompt("ed", AgentSpec(role="editor"))


def test_tool_advice_only_for_agents_with_tools() -> None:
    agent = AgentSpec(role="tester")
    assert "Using tools" in system_prompt("t", agent, has_tools=True)
    assert "Using tools" not in system_prompt("t", agent)


def test_the_executor_sends_the_agents_system_prompt() -> None:
    spec = make_spec(worker={"role": "reviewer", "goal": "Catch bugs."})
    provider = FakeProvider([reply("approve")])
    run_agent_step(spec, make_step(), "Review.", {}, provider, workspace=".")
    system = provider.requests[0].messages[0]
    assert system["role"] == "system"
    assert system["content"] == system_prompt("worker", spec.agents["worker"])
    assert PRESETS["reviewer"] in system["content"]
