"""Safe YAML reading that keeps the position of every node and bounds hostile input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from codexflow.errors import Issue

# Bounds checked before any model sees the data (DESIGN.md: a 469-byte alias bomb exhausts
# memory once expanded; 1,000 levels of nesting raise RecursionError in the composer).
MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000  # after alias expansion
MAX_EVENTS = 400_000

Path = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_CORE}{name}" for name in ("str", "int", "float", "bool", "null")}
_TIMESTAMP = f"{_CORE}timestamp"
_MERGE = f"{_CORE}merge"


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    col: int  # 1-based
    block: bool = False  # a `|` or `>` scalar: its text starts on the next line


@dataclass
class Source:
    """A parsed YAML document: plain Python data and where each part of it was written."""

    path: str
    data: Any
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    # Issues of severity "warning" found by a load that succeeded (shown, not fatal).
    warnings: list[Issue] = field(default_factory=list)

    def position(self, path: Path, *, key: bool = False) -> Position:
        """Where `path` was written: its key for `key=True`, else its value; else its nearest parent."""
        probe = tuple(path)
        table = self.keys if key else self.values
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Position(1, 1))


class YamlProblem(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(issues[0].message if issues else "")
        self.issues = issues


def read_yaml(text: str, path: str) -> Source:
    """Parse one YAML document into a Source. Raises YamlProblem with every problem found."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        size = len(text.encode("utf-8", errors="replace")) / (1024 * 1024)
        raise YamlProblem(
            [
                _issue(
                    path,
                    1,
                    1,
                    f"the file is {size:.1f} MiB; specs are limited to {MAX_BYTES // (1024 * 1024)} MiB",
                )
            ]
        )
    yaml = YAML(typ="safe")
    try:
        _check_shape(yaml, text, path)
        node = yaml.compose(text)
    except YamlProblem:
        raise
    except MarkedYAMLError as exc:
        raise YamlProblem([_marked(exc, path, text)]) from None
    except YAMLError as exc:
        raise YamlProblem([_issue(path, 1, 1, f"not valid YAML: {exc}")]) from None
    if node is None:
        raise YamlProblem(
            [_issue(path, 1, 1, "the file is empty; a spec starts with `apiVersion: codexflow/v1`")]
        )
    builder = _Builder(path, yaml)
    data = builder.build(node, ())
    if builder.issues:
        raise YamlProblem(builder.issues)
    return Source(path=path, data=data, values=builder.values, keys=builder.keys)


def _check_shape(yaml: YAML, text: str, path: str) -> None:
    """Walk the event stream (iteratively, nothing built) to bound nesting, size and documents."""
    depth = 0
    documents = 0
    for count, event in enumerate(yaml.parse(text)):
        if count > MAX_EVENTS:
            raise YamlProblem(
                [_issue(path, 1, 1, f"the file has more than {MAX_EVENTS} YAML nodes")]
            )
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise YamlProblem(
                    [
                        _issue(
                            path,
                            mark.line + 1,
                            mark.column + 1,
                            f"nesting deeper than {MAX_DEPTH} levels",
                        )
                    ]
                )
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            depth -= 1
        elif type(event).__name__ == "DocumentStartEvent":
            documents += 1
            if documents > 1:
                mark = event.start_mark
                raise YamlProblem(
                    [
                        _issue(
                            path,
                            mark.line + 1,
                            mark.column + 1,
                            "more than one YAML document; put one spec per file",
                        )
                    ]
                )
        elif isinstance(event, AliasEvent):
            pass  # expansion is bounded while building


class _Builder:
    """Turns composed nodes into plain data, recording positions; collects every problem."""

    def __init__(self, path: str, yaml: YAML) -> None:
        self.path = path
        self.constructor = yaml.constructor
        self.values: dict[Path, Position] = {}
        self.keys: dict[Path, Position] = {}
        self.issues: list[Issue] = []
        self.nodes = 0

    def problem(self, node: Node, message: str, hint: str = "") -> None:
        mark = node.start_mark
        self.issues.append(_issue(self.path, mark.line + 1, mark.column + 1, message, hint))

    def build(self, node: Node, path: Path) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if self.nodes == MAX_NODES + 1:
                self.problem(
                    node, f"the document expands to more than {MAX_NODES} nodes (an alias bomb?)"
                )
            return None
        mark = node.start_mark
        style = getattr(node, "style", None)
        self.values.setdefault(path, Position(mark.line + 1, mark.column + 1, style in ("|", ">")))
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            self.check_tag(node, f"{_CORE}seq")
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            self.check_tag(node, f"{_CORE}map")
            return self.mapping(node, path)
        self.problem(node, "unsupported YAML node")
        return None

    def check_tag(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            self.problem(
                node,
                f"the tag `{_short(node.tag)}` is not allowed",
                "specs use plain YAML: no tags",
            )

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value  # no spec field is a date: keep the text the user wrote
        if node.tag not in _SCALAR_TAGS:
            self.problem(
                node,
                f"the tag `{_short(node.tag)}` is not allowed",
                "specs use plain YAML: no tags",
            )
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except (YAMLError, ValueError) as exc:
            self.problem(node, f"cannot read the value {node.value!r}: {exc}")
            return node.value

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, Node] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.update(self.merge(value_node, path))
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, "mapping keys must be plain strings")
                continue
            key = self.scalar(key_node)
            if not isinstance(key, str):
                self.problem(
                    key_node,
                    f"the key {key_node.value!r} must be a string",
                    f'quote it: "{key_node.value}"',
                )
                key = str(key_node.value)
            if key in seen:
                first = seen[key].start_mark
                self.problem(
                    key_node,
                    f"duplicate key `{key}` (first defined at line {first.line + 1})",
                    "remove one of them",
                )
                continue
            seen[key] = key_node
            mark = key_node.start_mark
            self.keys[(*path, key)] = Position(mark.line + 1, mark.column + 1)
            result[key] = self.build(value_node, (*path, key))
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def merge(self, node: Node, path: Path) -> dict[str, Any]:
        """`<<: *base` or `<<: [*a, *b]`: keys of the merged mappings, the explicit keys winning."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem(source, "`<<` merges mappings only")
                continue
            for key, value in self.mapping(source, path).items():
                merged.setdefault(key, value)
        return merged


def _short(tag: str | None) -> str:
    tag = tag or "?"
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _marked(exc: MarkedYAMLError, path: str, text: str) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = (exc.problem or exc.context or "not valid YAML").strip()
    hint = ""
    lines = text.splitlines()
    at = lines[line - 1][col - 1 : col] if 0 < line <= len(lines) else ""
    if at == "\t" or "\\t" in problem:
        problem = "a tab character"
        hint = "YAML indents with spaces, never tabs"
    elif exc.context and exc.problem:
        problem = f"{problem} ({exc.context.strip()})"
    return _issue(path, line, col, f"not valid YAML: {problem}", hint)


def _issue(path: str, line: int, col: int, message: str, hint: str = "") -> Issue:
    return Issue(path=path, line=line, col=col, loc="", message=message, hint=hint)
