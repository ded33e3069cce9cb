"""Hostile YAML gets a clear error quickly, with little memory, and executes nothing."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from codexflow.cli import main
from codexflow.errors import SpecError
from codexflow.spec import load_spec, load_spec_text
from codexflow.spec.yaml_source import MAX_BYTES, MAX_DEPTH

# Generous bounds: they catch an exponential blow-up, not a slow machine.
SECONDS = 3.0
MEGABYTES = 64


def _rejected(load) -> tuple[SpecError, float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(SpecError) as raised:
            load()
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised.value, elapsed, peak / (1024 * 1024)


def test_alias_bomb_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded in work, not in seconds (a busy machine is slow, not wrong): the builder
    expands at most MAX_NODES nodes of the 9**10 the bomb describes, in bounded memory."""
    from codexflow.spec import yaml_source

    bomb = "a: &a [" + ",".join(['"lol"'] * 9) + "]\n"
    for name, prev in zip("bcdefghij", "abcdefghi", strict=True):
        bomb += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    assert len(bomb) < 600
    built = {"nodes": 0}
    original = yaml_source._Builder.build

    def counting(self: yaml_source._Builder, node: object, path: tuple) -> object:
        built["nodes"] += 1
        return original(self, node, path)  # type: ignore[arg-type]

    monkeypatch.setattr(yaml_source._Builder, "build", counting)
    error, _, peak = _rejected(lambda: load_spec_text(bomb, "bomb.yaml"))
    assert "alias bomb" in error.issues[0].message
    # Past the limit each remaining sibling on the open path costs one call: 9 per level.
    assert built["nodes"] <= yaml_source.MAX_NODES + 10 * 9
    assert peak < MEGABYTES


@pytest.fixture
def yaml_work(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The parser's work, counted: events it yielded, documents composed into nodes."""
    from ruamel.yaml import YAML

    work = {"events": 0, "composed": 0}
    parse, compose = YAML.parse, YAML.compose

    def counted_parse(self: YAML, stream: str) -> Iterator[object]:
        for event in parse(self, stream):
            work["events"] += 1
            yield event

    def counted_compose(self: YAML, stream: str) -> object:
        work["composed"] += 1
        return compose(self, stream)

    monkeypatch.setattr(YAML, "parse", counted_parse)
    monkeypatch.setattr(YAML, "compose", counted_compose)
    return work


def test_deep_nesting_is_bounded(yaml_work: dict[str, int]) -> None:
    text = "agents: " + "[" * 5000 + "]" * 5000 + "\n"
    error, _, peak = _rejected(lambda: load_spec_text(text, "deep.yaml"))
    assert "nesting deeper than" in error.issues[0].message
    # Refused while walking the event stream, a few events past the depth limit, and nothing
    # of the 5,000 levels was ever built into nodes (which is where recursion would blow up).
    assert yaml_work["events"] <= MAX_DEPTH + 8
    assert yaml_work["composed"] == 0
    assert peak < MEGABYTES


def test_huge_file_is_refused_before_parsing(tmp_path: Path, yaml_work: dict[str, int]) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as handle:
        line = "# " + "x" * 1022 + "\n"
        for _ in range(20 * 1024):  # 20 MiB
            handle.write(line)
    error, _, peak = _rejected(lambda: load_spec(path))
    assert "20.0 MiB" in error.issues[0].message
    assert yaml_work == {"events": 0, "composed": 0}  # not one byte reached the parser
    # At most the limit plus one byte was read: the 20 MiB never sat in memory.
    assert peak < 2 * MAX_BYTES / (1024 * 1024)


def test_python_tags_never_execute(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    text = f"""apiVersion: codexflow/v1
name: demo
agents:
  coder: !!python/object/apply:os.system ["touch {sentinel}"]
  other: !!python/name:os.system
tasks:
  write: {{agent: coder, prompt: Write it.}}
"""
    error, _, _ = _rejected(lambda: load_spec_text(text, "tags.yaml"))
    assert not sentinel.exists()
    assert [issue.line for issue in error.issues if "tag" in issue.message] == [4, 5]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n- b\n", "not a list"),
        ("42\n", "not a single value"),
        ("a: 1\n---\nb: 2\n", "more than one YAML document"),
        ("a: [1, 2\n", "not valid YAML"),
        ("{1: a}\n", "must be a string"),
    ],
)
def test_malformed_documents(text: str, expected: str) -> None:
    error, _, _ = _rejected(lambda: load_spec_text(text, "x.yaml"))
    assert expected in error.issues[0].render()


def test_unreadable_files_are_spec_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    assert (
        main(
            [
                "validate",
                str(tmp_path / "missing.yaml"),
                str(tmp_path),
                str(tmp_path / "latin1.yaml"),
            ]
        )
        == 2
    )
    out, err = capsys.readouterr()
    assert "no such file" in out and "is a directory" in out and "not UTF-8" in out
    assert "Traceback" not in out + err
