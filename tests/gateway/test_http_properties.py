"""A property-based run of the API's own OpenAPI document (schemathesis) against a live server:
whatever the generated requests hold, no answer is a server error, and answers match the schema."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from codexflow.gateway import Gateway, RunManager
from codexflow.gateway.http_api import create_app
from tests.gateway.conftest import SPECS, serving

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("properties")
    shutil.copytree(SPECS, root / "specs")
    manager = RunManager(root / "state", engine="local", approval_timeout=5)
    gateway = Gateway(root / "specs", manager, workspace_root=root)
    with serving(lambda port: create_app(gateway, port=port)) as url:
        yield url
    manager.shutdown(timeout=60)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_makes_a_server_error(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(
        base_url=base_url, checks=[not_a_server_error, response_schema_conformance], timeout=30
    )
