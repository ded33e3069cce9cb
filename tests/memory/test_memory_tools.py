"""The memory tools on the lasting store: scopes refuse through the tool, and the audit says so."""

from __future__ import annotations

import json
from pathlib import Path

from codexflow.events import EventBus
from codexflow.memory import Memory, MemoryConfig
from codexflow.memory.scopes import Scopes
from codexflow.spec.models import Spec
from codexflow.tools import AuditLog, ToolContext, build_toolset

TOOLS = ["memory_store", "memory_get", "memory_search", "memory_note"]


def spec() -> Spec:
    return Spec.model_validate(
        {
            "apiVersion": "codexflow/v1",
            "name": "tools-test",
            "agents": {"reader": {"role": "reviewer", "tools": TOOLS}},
            "tasks": {"t": {"agent": "reader", "prompt": "do it"}},
        }
    )


def test_a_refused_write_is_a_refusal_the_model_reads_and_an_event(tmp_path: Path) -> None:
    bus = EventBus()
    rules = {"reader": (frozenset({"team", "shared"}), frozenset({"shared"}))}
    config = MemoryConfig.under(
        tmp_path, namespace="team", embedding="hash", scopes=Scopes("team", rules)
    )
    memory = Memory(config, bus)
    bus.subscribe(memory.history.record)
    memory.put("plan", "ship on friday")  # a person, not scoped
    context = ToolContext(
        workspace=tmp_path, run_id="run-9", step_id="review", agent="reader",
        audit=AuditLog(), memory=memory,
    )  # fmt: skip
    tools = build_toolset(spec(), "reader", context)
    try:
        refused = tools.call("memory_store", {"key": "plan", "value": "ship never"})
        assert refused.refused and "may not write the memory namespace `team`" in refused.content
        assert tools.call("memory_get", {"key": "plan"}).content == "ship on friday"
        stored = tools.call("memory_store", {"key": "n", "value": "x", "namespace": "shared"})
        assert stored.ok
        hits = json.loads(tools.call("memory_search", {"query": "friday ship"}).content)
        assert hits[0]["key"] == "plan"
        assert tools.call("memory_note", {"text": "friday is the date", "kind": "knowledge"}).ok
        assert not tools.call("memory_note", {"text": "x", "kind": "gossip"}).ok
    finally:
        tools.close()
    outcomes = [(r.tool, r.outcome) for r in context.audit.records()]
    assert outcomes[0] == ("memory_store", "refused")
    events = memory.history.events(run_id="run-9")
    assert [(e.name, e.step_id) for e in events] == [
        ("codexflow.memory.refused", "review"),
        ("codexflow.memory.written", "review"),
    ]
    assert [n.text for n in memory.history.notes("run-9", "reader")] == ["friday is the date"]
