"""Run inputs: defaults, `--set` values parsed to their declared type, required and enum."""

from __future__ import annotations

import pytest

from codexflow.compiler.inputs import parse_assignments, resolve_inputs
from codexflow.errors import SpecError
from codexflow.spec import load_spec_text

SPEC = load_spec_text(
    """apiVersion: codexflow/v1
name: t
inputs:
  target: {type: string, default: src/}
  depth: {type: integer, default: 2}
  strict: {type: boolean, default: false}
  files: {type: array, default: []}
  level: {type: string, enum: [low, high], default: low}
  ticket: {type: string}
agents: {a: {role: coder}}
tasks:
  t: {agent: a, prompt: "{{ inputs.target }} {{ inputs.depth }} {{ inputs.ticket }}"}
""",
    "t.yaml",
)[0]


def test_overrides_are_parsed_to_their_type() -> None:
    values = resolve_inputs(
        SPEC,
        parse_assignments(
            ["depth=5", "strict=true", 'files=["a.py", "b.py"]', "ticket=ABC-1", "target=x=y"]
        ),
    )
    assert values == {
        "target": "x=y",
        "depth": 5,
        "strict": True,
        "files": ["a.py", "b.py"],
        "level": "low",
        "ticket": "ABC-1",
    }


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["depth=five", "ticket=x"], "expected integer"),
        (["depth=true", "ticket=x"], "expected integer"),
        (["strict=yes", "ticket=x"], "expected boolean"),
        (["level=medium", "ticket=x"], "is not one of"),
        ([], "the input `ticket` has no default"),
        (["ticket"], "is not name=value"),
        (["tickt=x"], "did you mean 'ticket'"),
    ],
)
def test_bad_values_are_spec_errors(pairs: list[str], message: str) -> None:
    with pytest.raises(SpecError) as raised:
        resolve_inputs(SPEC, parse_assignments(pairs))
    assert message in str(raised.value)
