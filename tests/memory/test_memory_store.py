"""Memory on real SQLite and Chroma in tmp_path: entries, retention, scopes, events, search."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from codexflow.events import Event, EventBus
from codexflow.memory import Memory, MemoryConfig, MemoryRefused
from codexflow.memory.scopes import Scopes


def make(tmp_path: Path, bus: EventBus | None = None, **settings: object) -> Memory:
    settings.setdefault("namespace", "team")
    settings.setdefault("embedding", "hash")
    memory = Memory(MemoryConfig.under(tmp_path, **settings), bus)
    if bus is not None:
        bus.subscribe(memory.history.record)
    return memory


def test_entries_keep_json_values_tags_and_authors(tmp_path: Path) -> None:
    memory = make(tmp_path)
    memory.put("plan", "refactor the parser", agent="architect", run_id="r1", tags=["b", "a", "a"])
    memory.put("limits", {"max": 3, "units": ["a", "b"]})
    assert memory.get("plan") == "refactor the parser"
    assert memory.get("limits") == '{"max": 3, "units": ["a", "b"]}'
    entry = memory.entry("plan")
    assert entry is not None
    assert (entry.author, entry.run_id, entry.tags) == ("architect", "r1", ["a", "b"])
    first_created = entry.created_at
    memory.put("plan", "refactor the lexer")
    again = memory.entry("plan")
    assert again is not None and again.value == "refactor the lexer"
    assert again.created_at == first_created and again.updated_at >= first_created
    assert memory.get("plan", namespace="elsewhere") is None
    assert [e.key for e in memory.entries()] == ["limits", "plan"]
    assert [e.key for e in memory.entries(prefix="pl")] == ["plan"]
    assert memory.delete("plan") and not memory.delete("plan")
    assert memory.get("plan") is None and memory.search("lexer") == []


def test_the_same_key_in_two_namespaces_is_two_entries(tmp_path: Path) -> None:
    memory = make(tmp_path, scopes=Scopes("team", {}))
    memory.put("k", "one")
    memory.put("k", "two", namespace="other")
    assert (memory.get("k"), memory.get("k", namespace="other")) == ("one", "two")
    assert sorted(memory.namespaces()) == ["other", "team"]
    assert memory.count() == 2 and memory.count("team") == 1


def test_ttl_hides_expired_entries_and_prune_removes_them(tmp_path: Path) -> None:
    memory = make(tmp_path)
    memory.put("long", "stays")
    memory.put("short", "gone soon", ttl=0.001)
    deadline = time.time() + 0.001
    while time.time() <= deadline:  # bounded: wait for the clock to pass the expiry, no sleep
        pass
    assert memory.get("short") is None and memory.get("long") == "stays"
    assert [hit.key for hit in memory.search("gone soon stays", limit=5)] == ["long"]
    assert memory.count() == 2  # hidden, not yet removed
    assert memory.prune() == 1
    assert memory.count() == 1
    assert memory.vectors.keys("team", memory.embedder.id) == ["long"]
    memory.put("brief", "expires", ttl=0.001)
    deadline = time.time() + 0.001
    while time.time() <= deadline:
        pass
    memory.put("other", "a write prunes the expired")
    assert sorted(e.key for e in memory.entries()) == ["long", "other"] and memory.count() == 2


def test_max_entries_drops_the_oldest_on_write(tmp_path: Path) -> None:
    memory = make(tmp_path, max_entries=3)
    for index in range(5):
        memory.put(f"k{index}", f"value {index}")
    assert [e.key for e in memory.entries()] == ["k2", "k3", "k4"]
    memory.put("k2", "rewritten")  # a rewrite makes it the newest
    memory.put("k5", "value 5")
    assert [e.key for e in memory.entries()] == ["k2", "k4", "k5"]
    assert sorted(memory.vectors.keys("team", memory.embedder.id)) == ["k2", "k4", "k5"]


def test_update_is_read_modify_write(tmp_path: Path) -> None:
    memory = make(tmp_path)
    for _ in range(5):
        memory.update("n", lambda value: (value or 0) + 2)
    assert memory.get("n") == "10"


def test_scopes_refuse_and_the_refusal_is_an_audit_event(tmp_path: Path) -> None:
    bus = EventBus()
    rules = {
        "reader": (frozenset({"team"}), frozenset()),
        "admin": (frozenset({"*"}), frozenset({"*"})),
    }
    memory = make(tmp_path, bus, scopes=Scopes("team", rules))
    memory.put("fact", "water is wet", agent="writer", run_id="r1", step_id="s1")
    assert memory.get("fact", agent="reader") == "water is wet"
    with pytest.raises(MemoryRefused, match="may not write the memory namespace `team`"):
        memory.put("fact", "changed", agent="reader", run_id="r1", step_id="s2")
    with pytest.raises(MemoryRefused, match="may not read"):
        memory.get("fact", namespace="secrets", agent="writer")
    memory.put("x", "y", namespace="secrets", agent="admin")
    assert memory.get("fact") == "water is wet"
    refused = memory.history.events(name="codexflow.memory.refused")
    assert [(e.agent, e.step_id, e.payload["mode"]) for e in refused] == [
        ("reader", "s2", "write"),
        ("writer", None, "read"),
    ]
    written = memory.history.events(run_id="r1", name="codexflow.memory.written")
    assert [(e.agent, e.step_id, e.payload["key"]) for e in written] == [("writer", "s1", "fact")]


def test_hash_search_ranks_by_word_overlap(tmp_path: Path) -> None:
    memory = make(tmp_path)
    labelled = {
        "deploy": "deploy the service with docker compose on the staging host",
        "tests": "run pytest with coverage before every merge request",
        "db": "postgres backups are taken nightly and kept for thirty days",
        "style": "format python code with ruff and keep lines under one hundred",
    }
    for key, text in labelled.items():
        memory.put(key, text)
    queries = {
        "when are postgres backups taken": "db",
        "which tool formats python code": "style",
        "docker staging deploy": "deploy",
        "coverage before merge": "tests",
    }
    for query, expected in queries.items():
        hits = memory.search(query, limit=4)
        assert hits[0].key == expected, (query, hits)
        assert all(hits[0].score > other.score for other in hits[1:])


def test_export_then_import_restores_entries_and_vectors(tmp_path: Path) -> None:
    source = make(tmp_path / "a")
    source.put("a", "alpha entry", agent="x", tags=["t"])
    source.put("b", {"n": 1}, namespace="other")
    rows = list(source.export())
    assert {row["key"] for row in rows} == {"a", "b"}
    target = make(tmp_path / "b")
    assert target.import_entries(rows) == 2
    assert [e.to_dict() for e in target.entries()] == [e.to_dict() for e in source.entries()]
    assert target.search("alpha entry", limit=1)[0].key == "a"


def test_sessions_agents_and_step_events(tmp_path: Path) -> None:
    bus = EventBus()
    memory = make(tmp_path, bus)
    history = memory.history
    history.start_session("run-1", "demo", "abc", {"x": 1}, agents=["coder", "tester"])
    bus.emit(Event("codexflow.step.started", "run-1", "build", "coder"))
    assert [a.state for a in history.agents("run-1")] == ["running", "created"]
    bus.emit(Event("codexflow.step.failed", "run-1", "build", "coder", {"error": "boom"}))
    bus.emit(Event("codexflow.step.started", "run-1", "check", "tester"))
    bus.emit(Event("codexflow.step.finished", "run-1", "check", "tester"))
    states = {a.agent: a for a in history.agents("run-1")}
    assert (states["coder"].state, states["coder"].error) == ("error", "boom")
    assert states["tester"].state == "idle"
    assert list(states["tester"].transitions) == ["created", "running", "idle"]
    history.add_note("run-1", "tester", "the flaky test is test_io")
    assert [n.text for n in history.notes("run-1")] == ["the flaky test is test_io"]
    session = history.session("run")
    assert session is not None and (session.spec_name, session.inputs) == ("demo", {"x": 1})
    assert next(e.name for e in history.events("run-1")) == "codexflow.step.started"
