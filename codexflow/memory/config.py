"""Where a run's memory lives and its rules, from the spec's `memory:` section and --state-dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codexflow.memory.scopes import Scopes

if TYPE_CHECKING:
    from codexflow.spec.models import Spec

DEFAULT_EMBEDDING = "minilm"


@dataclass(frozen=True)
class MemoryConfig:
    """Everything a Memory needs; `database` is a SQLAlchemy URL, `vectors` a directory or URL."""

    database: str
    vectors: str
    namespace: str = "default"
    embedding: str = DEFAULT_EMBEDDING
    scopes: Scopes | None = None  # None: every agent reads and writes `namespace` only
    max_entries: int | None = None
    ttl: float | None = None  # seconds an entry lives unless it sets its own
    api_base: str | None = None  # for `litellm:` embedders
    api_key_env: str | None = None

    def __post_init__(self) -> None:
        if self.scopes is None:
            object.__setattr__(self, "scopes", Scopes(self.namespace))

    @property
    def rules(self) -> Scopes:
        assert self.scopes is not None
        return self.scopes

    @classmethod
    def under(cls, state_dir: Path, **settings: object) -> MemoryConfig:
        """The default place: `<state_dir>/memory.db` and `<state_dir>/chroma`."""
        state = Path(state_dir).resolve()
        return cls(
            database=f"sqlite:///{state / 'memory.db'}",
            vectors=str(state / "chroma"),
            **settings,  # type: ignore[arg-type]
        )


def config_from_spec(spec: Spec, state_dir: Path, base: Path | None = None) -> MemoryConfig:
    """The spec's memory settings; relative SQLite paths and directories resolve against `base`
    (the spec file's directory), unset ones go under the state dir."""
    memory = spec.memory
    namespace = (memory.namespace if memory else None) or spec.name
    default = MemoryConfig.under(state_dir)
    base = (base or Path.cwd()).resolve()
    database, vectors = default.database, default.vectors
    if memory and memory.database:
        database = _resolve_sqlite(memory.database, base)
    if memory and memory.vectors:
        vectors = memory.vectors
        if not vectors.startswith(("http://", "https://")):
            vectors = str((base / vectors).resolve())
    rules = {
        agent: (frozenset(scope.read), frozenset(scope.write))
        for agent, scope in (memory.scopes.items() if memory else ())
    }
    embedding = memory.embedding if memory else DEFAULT_EMBEDDING
    api_base = api_key_env = None
    if embedding.startswith("litellm:") and "/" in embedding:
        provider = spec.providers.get(embedding[len("litellm:") :].split("/", 1)[0])
        if provider is not None:
            api_base, api_key_env = provider.api_base, provider.api_key_env
    return MemoryConfig(
        database=database,
        vectors=vectors,
        namespace=namespace,
        embedding=embedding,
        scopes=Scopes(namespace, rules),
        max_entries=memory.max_entries if memory else None,
        ttl=memory.ttl if memory else None,
        api_base=api_base,
        api_key_env=api_key_env,
    )


def _resolve_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return f"{prefix}{(base / rest).resolve()}"
    return url
