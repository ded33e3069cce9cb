"""codexflow's audit events as Prefect events: the UI's event feed, and triggers for automations.

Each `codexflow.events.Event` becomes a Prefect event of the same name (`codexflow.step.finished`,
`codexflow.budget.reached`, ...). Its resource is the codexflow run (`codexflow.run.<run-id>`,
labelled with the spec); the step and the agent are related resources (roles `step`, `agent`);
Prefect adds the flow run, task run, flow, deployment and tags of the context that emitted it.
The payload carries the event's own payload plus `tokens` and `cost_usd` (0 when unknown).

The runtime subscribes it on its EventBus: `subscribe_prefect_events(bus, spec=spec.name)`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from codexflow.events import Event, EventBus, Listener
from codexflow.runtime.prefect_env import server_url

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 32_000  # Prefect refuses events over 1.5 MB; an audit line needs far less
MAX_TEXT = 2_000  # longer strings in a payload (tool results, errors) are abridged


def run_resource_id(run_id: str) -> str:
    return f"codexflow.run.{run_id}"


def step_resource_id(run_id: str, step_id: str) -> str:
    return f"codexflow.step.{run_id}.{step_id}"


def to_prefect(event: Event, spec: str | None = None) -> dict[str, Any]:
    """The keyword arguments of `prefect.events.emit_event` for one codexflow event."""
    resource = {
        "prefect.resource.id": run_resource_id(event.run_id),
        "prefect.resource.name": event.run_id,
        "codexflow.run-id": event.run_id,
    }
    if spec:
        resource["codexflow.spec"] = spec
    related: list[dict[str, str]] = []
    if event.step_id:
        related.append({
            "prefect.resource.id": step_resource_id(event.run_id, event.step_id),
            "prefect.resource.role": "step",
            "prefect.resource.name": event.step_id,
        })  # fmt: skip
    if event.agent:
        related.append({
            "prefect.resource.id": f"codexflow.agent.{event.agent}",
            "prefect.resource.role": "agent",
            "prefect.resource.name": event.agent,
        })  # fmt: skip
    payload = _abridged(dict(event.payload))
    payload.setdefault("tokens", _tokens(event.payload))
    payload.setdefault("cost_usd", _cost(event.payload))
    payload.update(run_id=event.run_id, step_id=event.step_id, agent=event.agent)
    return {
        "event": event.name,
        "resource": resource,
        "related": related,
        "payload": payload,
        "occurred": datetime.fromtimestamp(event.time, tz=UTC),
    }


def prefect_event_listener(spec: str | None = None) -> Listener:
    """A bus listener that emits every event to Prefect (queued; sent by Prefect's thread)."""
    from prefect.events import emit_event

    def emit(event: Event) -> None:
        emit_event(**to_prefect(event, spec))

    return emit


def subscribe_prefect_events(
    bus: EventBus, spec: str | None = None, *, only_with_server: bool = True
) -> Callable[[], None]:
    """Emit the bus's events to Prefect from now on; returns the function that stops it.

    With `only_with_server` (the default) nothing is subscribed unless PREFECT_API_URL names a
    server: the embedded server keeps no event feed (its event persister is off), so sending
    there would only cost time."""
    if only_with_server and server_url() is None:
        return lambda: None
    return bus.subscribe(prefect_event_listener(spec))


def flush_prefect_events(timeout: float = 10.0) -> None:
    """Wait (bounded) until queued events are sent; Prefect also does this at interpreter exit."""
    from prefect.events.worker import EventsWorker

    try:
        EventsWorker.drain_all(timeout=timeout)
    except Exception:  # the history is a convenience, never a failure
        logger.warning("Prefect events not flushed", exc_info=True)


def _tokens(payload: dict[str, Any]) -> int:
    if isinstance(payload.get("tokens"), int):
        return int(payload["tokens"])
    return int(payload.get("prompt_tokens") or 0) + int(payload.get("completion_tokens") or 0)


def _cost(payload: dict[str, Any]) -> float:
    for key in ("cost_usd", "cost", "spent_usd"):
        if isinstance(payload.get(key), int | float):
            return float(payload[key])
    return 0.0


def _abridged(payload: dict[str, Any]) -> dict[str, Any]:
    """JSON-able and small: long strings cut, non-JSON values as text."""

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return value[:MAX_TEXT] + f"... ({len(value)} characters)"
        if isinstance(value, dict):
            return {str(k): cut(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [cut(v) for v in value]
        return value

    data = json.loads(json.dumps(cut(payload), default=str))
    if len(json.dumps(data)) > MAX_PAYLOAD_BYTES:
        return {"abridged": True, "keys": sorted(data)}
    return dict(data)
