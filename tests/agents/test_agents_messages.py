"""What a step's opening messages contain, and what they must never contain."""

from __future__ import annotations

import json
from typing import Any

from agent_fakes import FakeProvider, make_spec, make_step, reply

from codexflow.agents.executor import AgentExecutor
from codexflow.agents.messages import build_messages, user_message, visible_context
from codexflow.agents.step_io import StepCall
from codexflow.compiler.plan import Plan


def make_call(
    outputs: dict[str, Any] | None = None,
    prompt: str = "Review the changes.",
    item: Any = None,
    index: int | None = None,
    **step: Any,
) -> StepCall:
    return StepCall(
        step=make_step(**step),
        prompt=prompt,
        context=outputs or {},
        run_id="r1",
        item=item,
        index=index,
    )


def sent_text(provider: FakeProvider) -> str:
    return "\n".join(str(m["content"]) for m in provider.requests[0].messages)


def test_only_the_context_the_step_may_see_reaches_the_model() -> None:
    outputs = {"plan": "PLAN-TEXT", "peer": "PEER-SECRET", "other": {"x": "OTHER-SECRET"}}
    provider = FakeProvider([reply("verdict")])

    AgentExecutor(make_spec(), provider, workspace=".").execute(
        make_call(outputs, context=("plan",))
    )

    sent = sent_text(provider)
    assert "PLAN-TEXT" in sent
    assert "PEER-SECRET" not in sent
    assert "OTHER-SECRET" not in sent
    assert "peer" not in sent


def test_a_step_without_context_sees_none_even_when_handed_some() -> None:
    message = user_message(make_call({"plan": "PLAN-TEXT"}))
    assert "PLAN-TEXT" not in message
    assert "Context" not in message


def test_fan_out_outputs_are_visible_per_item_in_index_order() -> None:
    outputs = {
        "refactor[10]": "ten",
        "refactor[2]": "two",
        "refactorx[1]": "hidden",
        "refactor[*]x": "no",
    }
    step = make_step(context=("refactor[*]",))
    assert list(visible_context(step, outputs)) == ["refactor[2]", "refactor[10]"]
    assert visible_context(step, {"refactor[*]": ["a", "b"]}) == {"refactor[*]": ["a", "b"]}


def test_context_is_labelled_by_step_and_agent_and_structured_outputs_are_json() -> None:
    outputs = {"plan": {"units": ["a.py", "b.py"]}, "work[0]": "did a.py"}
    plan_steps = (make_step(id="plan", agent="architect"), make_step(id="work[*]", agent="coder"))
    plan = Plan(name="t", steps=plan_steps, edges=(), groups=(), inputs={})
    provider = FakeProvider([reply("merged")])
    executor = AgentExecutor(make_spec(), provider, workspace=".", plan=plan)

    executor.execute(make_call(outputs, context=("plan", "work[*]")))

    user = provider.requests[0].messages[1]["content"]
    assert "## Step `plan` (agent `architect`)" in user
    assert "## Step `work[0]` (agent `coder`)" in user
    assert "```json\n" + json.dumps({"units": ["a.py", "b.py"]}, indent=2) + "\n```" in user
    assert user.index("# Context") < user.index("# Task")


def test_the_user_message_carries_task_item_instruction_and_answer_format() -> None:
    schema = {"type": "object", "properties": {"verdict": {"type": "string"}}}
    message = user_message(
        make_call(
            prompt="Refactor {{ item }} was rendered to: Refactor b.py.",
            item={"path": "b.py"},
            index=1,
            instruction="Merge your workers' answers into one.",
            output_schema=schema,
        )
    )
    assert "# Task\n\nRefactor {{ item }} was rendered to: Refactor b.py." in message
    assert '# Your item (item 1)\n\n```json\n{\n  "path": "b.py"\n}\n```' in message
    assert "# What this step must do\n\nMerge your workers' answers into one." in message
    assert "# Answer format" in message and '"verdict"' in message


def test_plain_steps_have_no_instruction_item_or_format_sections() -> None:
    system, user = build_messages("SYSTEM", make_call(prompt="Just do it."))
    assert system == {"role": "system", "content": "SYSTEM"}
    assert user == {"role": "user", "content": "# Task\n\nJust do it."}
