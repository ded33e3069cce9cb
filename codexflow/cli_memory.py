"""`codexflow memory get|set|list|search|export|import|prune` and `codexflow agents [RUN]`.

Thin like the rest of the CLI: options become a Memory (from a spec's `memory:` section or the
state dir), one call, one renderer. The memory package is imported inside the commands, so
`codexflow validate` never loads sqlmodel or chromadb.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from codexflow.memory import Memory

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2  # as in codexflow.cli

memory_app = typer.Typer(
    help="Inspect and edit shared memory: the entries agents keep across runs.",
    no_args_is_help=True,
)

SpecOption = Annotated[
    Path | None,
    typer.Option("--spec", help="Use this spec's `memory:` settings (database, namespace...)."),
]
StateDir = Annotated[
    Path, typer.Option("--state-dir", help="Where `apply` keeps memory when the spec sets none.")
]
Database = Annotated[
    str | None, typer.Option("--database", help="SQLAlchemy URL (instead of the state dir's).")
]
Vectors = Annotated[
    str | None, typer.Option("--vectors", help="Chroma directory or http://host:port.")
]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: the spec's, else `default`)."),
]
Embedding = Annotated[
    str | None,
    typer.Option("--embedding", help="minilm | hash | litellm:<model> (default: the spec's)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def open_memory(
    spec: Path | None,
    state_dir: Path,
    database: str | None = None,
    vectors: str | None = None,
    namespace: str | None = None,
    embedding: str | None = None,
) -> Memory:
    """A Memory from the options: the spec's settings first, then each option overrides."""
    from dataclasses import replace

    from codexflow.memory import Memory, MemoryConfig, config_from_spec
    from codexflow.memory.scopes import Scopes

    if spec is not None:
        from codexflow.spec import load_spec

        config = config_from_spec(load_spec(spec), state_dir, base=spec.parent)
    else:
        config = MemoryConfig.under(state_dir)
    changes: dict[str, Any] = {}
    if database:
        changes["database"] = database
    if vectors:
        changes["vectors"] = vectors
    if namespace:
        changes["namespace"] = namespace
        changes["scopes"] = Scopes(namespace)  # a person at the CLI is not held by agent scopes
    if embedding:
        changes["embedding"] = embedding
    return Memory(replace(config, **changes) if changes else config)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


@memory_app.command("get")
def memory_get(
    key: Annotated[str, typer.Argument(help="The entry's key.")],
    spec: SpecOption = None,
    state_dir: StateDir = Path(".codexflow"),
    database: Database = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """Print the value under KEY (exit 1 when there is none)."""
    memory = open_memory(spec, state_dir, database, None, namespace)
    entry = memory.entry(key)
    if entry is None:
        _err().print(f"[red]no entry `{escape(key)}` in namespace `{memory.namespace}`[/red]")
        raise typer.Exit(EXIT_RUN_FAILED)
    if as_json:
        _print_json(entry.to_dict())
    else:
        sys.stdout.write(entry.text + "\n")


@memory_app.command("set")
def memory_set(
    key: Annotated[str, typer.Argument(help="The entry's key.")],
    value: Annotated[str, typer.Argument(help="The value (text; JSON with --json-value).")],
    json_value: Annotated[
        bool, typer.Option("--json-value", help="Parse VALUE as JSON (numbers, lists, objects).")
    ] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    ttl: Annotated[
        float | None, typer.Option("--ttl", help="Seconds the entry lives.", min=0.001)
    ] = None,
    spec: SpecOption = None,
    state_dir: StateDir = Path(".codexflow"),
    database: Database = None,
    vectors: Vectors = None,
    namespace: Namespace = None,
    embedding: Embedding = None,
) -> None:
    """Write VALUE under KEY (overwrites), with its vector for `search`."""
    parsed: Any = value
    if json_value:
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            _err().print(f"[red]VALUE is not JSON: {escape(str(exc))}[/red] (drop --json-value)")
            raise typer.Exit(EXIT_INVALID) from None
    memory = open_memory(spec, state_dir, database, vectors, namespace, embedding)
    entry = memory.put(key, parsed, tags=tag or (), ttl=ttl)
    _out().print(f"stored {escape(entry.key)} in {entry.namespace}")


@memory_app.command("list")
def memory_list(
    prefix: Annotated[str, typer.Option("--prefix", help="Only keys starting with it.")] = "",
    all_namespaces: Annotated[
        bool, typer.Option("--all", help="Every namespace, not just one.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 1000,
    spec: SpecOption = None,
    state_dir: StateDir = Path(".codexflow"),
    database: Database = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """List entries: key, author, last write, value (shortened)."""
    memory = open_memory(spec, state_dir, database, None, namespace)
    entries = memory.entries(
        namespace=None if all_namespaces else memory.namespace, prefix=prefix, limit=limit
    )
    if as_json:
        _print_json([entry.to_dict() for entry in entries])
        return
    if not entries:
        where = "any namespace" if all_namespaces else f"namespace `{memory.namespace}`"
        _out().print(f"no entries in {where}")
        return
    table = Table(box=None)
    for column in ("namespace", "key", "author", "updated", "value"):
        table.add_column(column)
    for entry in entries:
        text = entry.text if len(entry.text) <= 60 else entry.text[:57] + "..."
        table.add_row(
            entry.namespace,
            escape(entry.key),
            entry.author or "-",
            _when(entry.updated_at),
            escape(text),
        )
    _out().print(table)


@memory_app.command("search")
def memory_search(
    query: Annotated[str, typer.Argument(help="What you are looking for, in words.")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many.")] = 5,
    spec: SpecOption = None,
    state_dir: StateDir = Path(".codexflow"),
    database: Database = None,
    vectors: Vectors = None,
    namespace: Namespace = None,
    embedding: Embedding = None,
    as_json: AsJson = False,
) -> None:
    """The entries nearest in meaning to QUERY, best first, with their similarity."""
    memory = open_memory(spec, state_dir, database, vectors, namespace, embedding)
    hits = memory.search(query, limit=limit)
    if as_json:
        _print_json([{"key": h.key, "value": h.value, "score": h.score} for h in hits])
        return
    if not hits:
        _out().print(f"nothing found in namespace `{memory.namespace}`")
    for hit in hits:
        _out().print(f"{hit.score:.3f}  {escape(hit.key)}  {escape(hit.value)}")


@memory_app.command("export")
def memory_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("--all", help="Every namespace.")] = False,
    spec: SpecOption = None,
    state_dir: StateDir = Path(".codexflow"),
    database: Database = None,
    namespace: Namespace = None,
) -> None:
    """Write entries as JSON Lines (one entry a line), for backups and `import`."""
    memory = open_memory(spec, state_dir, database, None, namespace)
    rows = memory.export(None if all_namespaces else memory.namespace)
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        sys.stdout.writelines(lines)
        return
    with open(output, "w", encoding="utf-8") as out:
        count = sum(1 for line in lines if out.write(line) is not None)
    _err().print(f"exported {count} entries to {output}")


def _read_jsonl(source: Path) -> Iterator[dict[str, Any]]:
    stream = sys.stdin if str(source) == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise _BadLine(f"{source}:{number}:1: not JSON: {exc}") from None
            if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                raise _BadLine(f"{source}:{number}:1: expected an object with a string `key`")
            yield row
    finally:
        if stream is not sys.stdin:
            stream.close()


class _BadLine(Exception):
    pass


@memory_app.command("import")
def memory_import(
    source: Annotated[Path, typer.Argument(help="A JSON Lines file from `export` (- for stdin).")],
    spec: SpecOption = None,
    state_dir: StateDir = Path(".codexflow"),
    database: Database = None,
    vectors: Vectors = None,
    namespace: Namespace = None,
    embedding: Embedding = None,
) -> None:
    """Upsert entries from JSON Lines (each keeps its namespace; --namespace fills missing ones)."""
    if str(source) != "-" and not source.is_file():
        _err().print(f"[red]{source}: no such file[/red]")
        raise typer.Exit(EXIT_INVALID)
    memory = open_memory(spec, state_dir, database, vectors, namespace, embedding)
    try:
        count = memory.import_entries(_read_jsonl(source))
    except _BadLine as exc:
        _err().print(f"[red]{escape(str(exc))}[/red] (nothing after this line was imported)")
        raise typer.Exit(EXIT_INVALID) from None
    _out().print(f"imported {count} entries")


@memory_app.command("prune")
def memory_prune(
    max_entries: Annotated[
        int | None,
        typer.Option("--max-entries", min=1, help="Keep at most this many per namespace."),
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("--all", help="Every namespace.")] = False,
    spec: SpecOption = None,
    state_dir: StateDir = Path(".codexflow"),
    database: Database = None,
    vectors: Vectors = None,
    namespace: Namespace = None,
    embedding: Embedding = None,
) -> None:
    """Remove expired entries and, with a limit (--max-entries or the spec's), the oldest."""
    from dataclasses import replace

    memory = open_memory(spec, state_dir, database, vectors, namespace, embedding)
    if max_entries is not None:
        memory.config = replace(memory.config, max_entries=max_entries)
    removed = memory.prune(None if all_namespaces else memory.namespace)
    _out().print(f"removed {removed} entries")


def agents(
    run: Annotated[
        str | None, typer.Argument(help="A run id or unique prefix (default: the latest run).")
    ] = None,
    spec: SpecOption = None,
    state_dir: StateDir = Path(".codexflow"),
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """The agents of a run: lifecycle state, when they entered each state, what they spent."""
    memory = open_memory(spec, state_dir, database)
    history = memory.history
    if run is None:
        latest = history.sessions(limit=1)
        session = latest[0] if latest else None
    else:
        session = history.session(run)
    if session is None:
        found = "no runs recorded" if run is None else f"no single run matching `{run}`"
        _err().print(f"[red]{found} in {memory.config.database}[/red]")
        raise typer.Exit(EXIT_INVALID)
    rows = history.agents(session.run_id)
    notes = history.notes(session.run_id)
    if as_json:
        _print_json(
            {
                "run_id": session.run_id,
                "spec": session.spec_name,
                "status": session.status,
                "agents": [row.model_dump() for row in rows],
                "notes": [note.model_dump() for note in notes],
            }
        )
        return
    console = _out()
    console.print(
        f"run {session.run_id}  {session.spec_name}  {session.status}  "
        f"started {_when(session.started_at)}"
    )
    table = Table(box=None)
    for column in ("agent", "state", "since", "steps", "tokens", "cost $", "lifecycle"):
        table.add_column(
            column, justify="right" if column in ("steps", "tokens", "cost $") else "left"
        )
    for row in rows:
        lifecycle = " → ".join(
            name for name, _ in sorted(row.transitions.items(), key=lambda item: item[1])
        )
        table.add_row(
            row.agent,
            row.state,
            _when(row.updated_at),
            str(row.steps),
            str(row.prompt_tokens + row.completion_tokens),
            f"{row.cost_usd:.4f}",
            lifecycle,
        )
    console.print(table)
    for row in rows:
        if row.error:
            console.print(f"[red]{row.agent}: {escape(row.error)}[/red]")
    for note in notes:
        console.print(f"{note.agent} ({note.kind}): {escape(note.text)}")
