"""pyproject's bounds admit what constraints.txt pins (and was tested), and nothing newer."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(text) for text in project["dependencies"]]


def pins() -> dict[str, Version]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[canonicalize_name(name.split("[", 1)[0])] = Version(version.strip())
    return found


@pytest.mark.parametrize("requirement", requirements(), ids=lambda r: r.name)
def test_each_dependency_admits_its_pin_and_has_an_upper_bound(requirement: Requirement) -> None:
    pinned = pins()[canonicalize_name(requirement.name)]
    assert requirement.specifier.contains(pinned, prereleases=True), (requirement, pinned)
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), (
        f"{requirement.name} has no upper bound: a plain pip install may pick an untested version"
    )


def test_the_untested_releases_of_the_issue_are_refused() -> None:
    by_name = {canonicalize_name(r.name): r for r in requirements()}
    assert not by_name["prefect"].specifier.contains("3.9.1")
    assert not by_name["litellm"].specifier.contains("1.110.2")
