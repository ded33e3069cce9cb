"""The one Prefect flow: `apply_spec` loads, compiles and runs a spec. `codexflow apply`,
deployments (`flows/apply_spec.py:apply_spec`) and retries from the Prefect UI all run it."""

from __future__ import annotations

from typing import Any

from prefect import flow


@flow(name="apply-spec", log_prints=False, validate_parameters=True)
def apply_spec(
    spec: str,
    inputs: dict[str, Any] | None = None,
    workspace: str | None = None,
    state_dir: str = ".codexflow",
    approve: list[str] | None = None,
    model: str | None = None,
    fresh: bool = False,
) -> dict[str, Any]:
    """Apply the spec at `spec` (a path, relative to the flow's working directory) with `inputs`;
    headless: approval gates pass only when named in `approve`. Returns the run's summary."""
    from pathlib import Path

    from codexflow.api import ApplyOptions, apply
    from codexflow.runtime.record import summary

    options = ApplyOptions(
        inputs=dict(inputs or {}),
        model=model,
        workspace=Path(workspace) if workspace else None,
        state_dir=Path(state_dir),
        fresh=fresh,
        approve=frozenset(approve or ()),
    )
    result = apply(spec, options)
    return summary(result)
