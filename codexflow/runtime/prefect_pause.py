"""Asking a person through Prefect: the flow run pauses with a form in the UI (or answered
through the API's resume-with-input) for an approval gate or a budget that was reached."""

from __future__ import annotations

from typing import Any

from codexflow.compiler.plan import Step
from codexflow.errors import BudgetExceeded


async def ask_gate(step: Step, summary: str, timeout: float) -> bool | None:
    """Pause until someone approves or denies the gate; None when nobody answered in time."""
    from prefect.flow_runs import apause_flow_run
    from prefect.input import RunInput
    from pydantic import Field, create_model

    description = (
        f"Approve task `{step.task}`? Tick `approve` to run it; leave it unticked to deny "
        f"(the task and what depends on it are skipped; other branches go on).\n\n{summary}"
    )
    form: Any = create_model(
        "Approval",
        __base__=RunInput,
        __doc__=description,
        approve=(bool, Field(False, description=f"Run task {step.task}.")),
        note=(str, Field("", description="Why (kept in the run's logs).")),
    )
    try:
        reply = await apause_flow_run(
            wait_for_input=form, timeout=max(1, int(timeout)), poll_interval=1
        )
    except Exception:  # timed out, or the server refused the pause
        return None
    return bool(getattr(reply, "approve", False)) if reply is not None else None


async def ask_budget(exc: BudgetExceeded, timeout: float) -> float | None:
    """Pause until someone types a new limit of the kind that was reached (USD or tokens);
    None when declined (left empty) or after `timeout` seconds."""
    from prefect.flow_runs import apause_flow_run
    from prefect.input import RunInput
    from pydantic import Field, create_model

    kind = getattr(exc, "limit_kind", "usd")
    field_name, unit = ("max_tokens", "tokens") if kind == "tokens" else ("max_usd", "USD")
    spent, limit = getattr(exc, "spent", 0.0), getattr(exc, "limit", 0.0)
    form: Any = create_model(  # type: ignore[call-overload]
        "BudgetIncrease",
        __base__=RunInput,
        __doc__=(
            f"The run reached its {unit} budget ({spent:g} spent of {limit:g} {unit}): {exc}. "
            f"Enter a new limit in {unit} to go on, or leave it empty to stop (completed steps "
            "are kept; a later apply resumes)."
        ),
        **{field_name: (float | None, Field(None, description=f"New limit in {unit}."))},
    )
    try:
        reply = await apause_flow_run(
            wait_for_input=form, timeout=max(1, int(timeout)), poll_interval=1
        )
    except Exception:
        return None
    value = getattr(reply, field_name, None) if reply is not None else None
    return float(value) if value is not None else None
