"""AgentExecutor: the model route it builds, the tool context it hands over, what it refuses."""

from __future__ import annotations

import time
from typing import Any

import pytest
from agent_fakes import FakeProvider, FakeToolset, make_spec, make_step, reply

from codexflow.agents.executor import AgentExecutor, build_route
from codexflow.agents.step_io import StepCall
from codexflow.errors import RunError
from codexflow.spec.models import Spec


def spec_with_providers() -> Spec:
    return Spec.model_validate(
        {
            "apiVersion": "codexflow/v1",
            "name": "test",
            "defaults": {"model": "openai/gpt-4o-mini"},
            "providers": {
                "local": {"api_base": "http://127.0.0.1:9/v1", "api_key_env": "LOCAL_KEY"}
            },
            "agents": {
                "worker": {"role": "coder", "model": "local/qwen", "fallbacks": ["openai/gpt-4o"]},
                "plain": {"role": "tester"},
            },
            "tasks": {"job": {"agent": "worker", "prompt": "x"}},
        }
    )


def test_the_route_takes_the_agents_model_and_its_providers_settings() -> None:
    step = make_step(temperature=0.3, max_tokens=256, retries=2, retry_delay=0.5, timeout=30.0)
    route = build_route(spec_with_providers(), step)
    assert route.model == "local/qwen"
    assert route.fallbacks == ("openai/gpt-4o",)
    assert (
        route.temperature,
        route.max_tokens,
        route.retries,
        route.retry_delay,
        route.timeout,
    ) == (
        0.3,
        256,
        2,
        0.5,
        30.0,
    )
    assert (route.api_base, route.api_key_env) == ("http://127.0.0.1:9/v1", "LOCAL_KEY")


def test_the_route_falls_back_to_the_default_model_and_the_step_model_wins() -> None:
    spec = spec_with_providers()
    plain = build_route(spec, make_step(agent="plain"))
    assert (plain.model, plain.fallbacks, plain.api_base) == ("openai/gpt-4o-mini", (), None)
    assert build_route(spec, make_step(model="openai/o3")).model == "openai/o3"


def test_the_toolset_gets_a_context_for_this_call_and_is_closed() -> None:
    spec = make_spec(worker={"role": "coder", "tools": ["read_file"], "writable": ["src/**"]})
    seen: list[tuple[str, Any]] = []
    tools = FakeToolset({"read_file": lambda path: path})

    def factory(spec: Spec, agent: str, ctx: Any) -> FakeToolset:
        seen.append((agent, ctx))
        return tools

    provider = FakeProvider([reply("done")])
    executor = AgentExecutor(spec, provider, workspace="/tmp/ws", toolset_factory=factory)
    call = StepCall(
        step=make_step(id="job[*]", tools=("read_file",)),
        prompt="p",
        context={},
        run_id="r9",
        item="a",
        index=3,
    )

    executor.execute(call)

    ((agent, ctx),) = seen
    assert agent == "worker"
    assert (str(ctx.workspace), ctx.run_id, ctx.step_id, ctx.agent, ctx.writable) == (
        "/tmp/ws",
        "r9",
        "job[3]",
        "worker",
        ["src/**"],
    )
    assert provider.steps == ["job[3]"]  # the provider's ledger and errors name the item
    assert tools.closed


def test_steps_without_tools_build_no_toolset() -> None:
    def factory(*_: Any) -> FakeToolset:
        raise AssertionError("no toolset wanted")

    executor = AgentExecutor(
        make_spec(), FakeProvider([reply("ok")]), workspace=".", toolset_factory=factory
    )
    assert (
        executor.execute(StepCall(step=make_step(), prompt="p", context={}, run_id="r")).output
        == "ok"
    )


def test_approval_steps_and_unknown_agents_are_refused() -> None:
    executor = AgentExecutor(make_spec(), FakeProvider([]), workspace=".")
    with pytest.raises(RunError, match="approval"):
        executor.execute(
            StepCall(step=make_step(kind="approval", agent=None), prompt="", context={}, run_id="r")
        )
    with pytest.raises(RunError, match="agent 'ghost' is not defined"):
        executor.execute(StepCall(step=make_step(agent="ghost"), prompt="", context={}, run_id="r"))


def test_no_turn_starts_after_the_step_timeout() -> None:
    timeout = 0.5  # wide: the first turn must start before it, however busy the machine

    def slow(request: Any) -> Any:
        # A model turn as long as the whole step's timeout: it began after the step did, so
        # when it returns the deadline has passed by construction, not by a guess at timing.
        time.sleep(timeout)
        return reply(None, ("read_file", {"path": "a"}))

    spec = make_spec(worker={"role": "coder", "tools": ["read_file"]})
    provider = FakeProvider([slow] * 5)
    executor = AgentExecutor(
        spec,
        provider,
        workspace=".",
        toolset_factory=lambda *_: FakeToolset({"read_file": lambda path: path}),
    )
    step = make_step(tools=("read_file",), timeout=timeout, max_turns=5)
    with pytest.raises(RunError, match=r"step 'job': timed out after 0.5 s \(1 model turns done\)"):
        executor.execute(StepCall(step=step, prompt="p", context={}, run_id="r"))
    assert len(provider.requests) == 1
