"""The published JSON Schema is current and agrees with the pydantic models."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from codexflow.spec.load import without_extensions
from codexflow.spec.models import Spec
from codexflow.spec.schema import SCHEMA_FILE, json_schema, render_schema
from codexflow.spec.yaml_source import YamlProblem, read_yaml

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "specs").glob("*.yaml")) + sorted(
    (ROOT / "tests/fixtures/specs").rglob("*.yaml")
)
VALIDATOR = Draft202012Validator(json_schema())


def test_published_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_schema(), (
        "schemas/swarm.schema.json is stale: run `make schema`"
    )


def test_schema_is_itself_valid() -> None:
    Draft202012Validator.check_schema(json_schema())


def _model_accepts(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    try:
        Spec.model_validate(without_extensions(data))
    except ValidationError:
        return False
    return True


def _documents() -> list[tuple[str, Any]]:
    out = []
    for path in CORPUS:
        try:
            out.append((path.name, read_yaml(path.read_text(encoding="utf-8"), path.name).data))
        except YamlProblem:
            continue  # not YAML at all: neither validator ever sees it
    return out


DOCUMENTS = _documents()


@pytest.mark.parametrize(("name", "data"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_schema_and_models_agree_on_the_corpus(name: str, data: Any) -> None:
    assert VALIDATOR.is_valid(data) == _model_accepts(data), name


# Mutations of valid specs: change one value somewhere to another JSON value, or add a key.
# Integral floats (2.0) are left out on purpose: JSON Schema calls 2.0 an integer, while the
# models refuse a YAML float where an integer belongs (no silent coercion). That is the one
# known difference between the two validators.
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.floats(min_value=-2, max_value=3, allow_nan=False).filter(lambda x: not x.is_integer()),
    st.sampled_from(
        ["", "3", "no", "coder", "hierarchical", "codexflow/v1", "openai/x", "a-b", "UPPER"]
    ),
    st.lists(st.sampled_from(["read_file", "coder", "x"]), max_size=2),
    st.just({}),
)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(_paths(value, (*prefix, index)))
    return found


VALID_DOCUMENTS = [data for _, data in DOCUMENTS if _model_accepts(data)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_schema_and_models_agree_on_mutations(data: st.DataObject) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(VALID_DOCUMENTS)))
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        parent[data.draw(st.sampled_from(["extra", "kind", "model", "x-note", "rounds"]))] = (
            data.draw(_values)
        )
    else:
        parent[path[-1]] = data.draw(_values)
    assert VALIDATOR.is_valid(document) == _model_accepts(document), (path, document)
