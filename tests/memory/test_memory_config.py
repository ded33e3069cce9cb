"""Where memory lives: the spec's settings resolve against its file, the rest under --state-dir."""

from __future__ import annotations

from pathlib import Path

from codexflow.memory import config_from_spec
from codexflow.spec.models import Spec


def spec(memory: dict | None = None, **extra: object) -> Spec:
    data: dict = {
        "apiVersion": "codexflow/v1",
        "name": "demo",
        "agents": {"a": {"role": "coder"}, "b": {"role": "reviewer"}},
        "tasks": {"t": {"agent": "a", "prompt": "do it"}},
        **extra,
    }
    if memory is not None:
        data["memory"] = memory
    return Spec.model_validate(data)


def test_defaults_live_under_the_state_dir(tmp_path: Path) -> None:
    config = config_from_spec(spec(), tmp_path / "state", base=tmp_path)
    assert config.database == f"sqlite:///{(tmp_path / 'state' / 'memory.db').resolve()}"
    assert config.vectors == str((tmp_path / "state" / "chroma").resolve())
    assert (config.namespace, config.embedding, config.max_entries) == ("demo", "minilm", None)
    assert config.rules.allows("a", "demo", "write") and not config.rules.allows("a", "x", "read")


def test_relative_places_resolve_against_the_spec_and_urls_stay(tmp_path: Path) -> None:
    memory = {
        "namespace": "notes",
        "database": "sqlite:///data/m.db",
        "vectors": "vectors",
        "embedding": "litellm:local/embedder",
        "ttl": 60,
        "scopes": {"b": {"read": ["*"], "write": []}},
    }
    providers = {"local": {"api_base": "http://127.0.0.1:9/v1", "api_key_env": "LOCAL_KEY"}}
    config = config_from_spec(spec(memory, providers=providers), tmp_path / "s", base=tmp_path)
    assert config.database == f"sqlite:///{(tmp_path / 'data' / 'm.db').resolve()}"
    assert config.vectors == str((tmp_path / "vectors").resolve())
    assert (config.api_base, config.api_key_env, config.ttl) == (
        "http://127.0.0.1:9/v1",
        "LOCAL_KEY",
        60,
    )
    assert config.rules.allows("b", "anything", "read")
    assert not config.rules.allows("b", "notes", "write")
    assert config.rules.allows("a", "notes", "write")  # not listed: its spec's namespace
    remote = {"database": "postgresql+psycopg://db.internal/codexflow", "vectors": "http://c:8000"}
    config = config_from_spec(spec(remote), tmp_path, base=tmp_path)
    assert (config.database, config.vectors) == (remote["database"], remote["vectors"])
