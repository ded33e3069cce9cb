"""`codexflow deploy`: register (or update) a Prefect deployment of the `apply_spec` flow for a spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codexflow.errors import CodexflowError, Issue, SpecError

FLOW_FILE = Path("flows") / "apply_spec.py"
FILE_ENTRYPOINT = "flows/apply_spec.py:apply_spec"
# Where no `flows/apply_spec.py` sits in the project: the same flow, imported from the package.
MODULE_ENTRYPOINT = "codexflow.runtime.flow.apply_spec"
DEFAULT_POOL = "codexflow"


class DeployError(CodexflowError):
    """The deployment could not be registered (no server, a refused request)."""


@dataclass(frozen=True)
class DeployRequest:
    """What `codexflow deploy` was asked for; paths are as the user typed them."""

    spec_path: Path
    name: str | None = None  # the deployment's name; the spec's name by default
    pool: str = DEFAULT_POOL
    cron: str | None = None  # overrides the spec's `schedule.cron`
    timezone: str | None = None  # overrides the spec's `schedule.timezone`
    inputs: dict[str, Any] = field(default_factory=dict)  # `--set` (strings, parsed by type)
    project_dir: Path | None = None  # the worker's working directory; cwd by default
    state_dir: str = ".codexflow"  # as the worker sees it (relative to project_dir)
    workspace: str | None = None
    approve: tuple[str, ...] = ()
    model: str | None = None
    paused: bool = False


@dataclass(frozen=True)
class Deployed:
    """What was registered: enough to print the next steps and to test it."""

    deployment_id: str
    full_name: str  # `apply-spec/<name>`, what `prefect deployment run` takes
    pool: str
    pool_created: bool
    created: bool  # False: an existing deployment of that name was updated
    cron: str | None
    timezone: str | None
    parameters: dict[str, Any]
    entrypoint: str
    project_dir: str
    api_url: str

    @property
    def next_steps(self) -> list[str]:
        return [
            f"prefect worker start --pool {self.pool}",
            f"prefect deployment run '{self.full_name}'",
        ]


def deploy_spec(request: DeployRequest) -> Deployed:
    """Validate the spec and its inputs, make sure the work pool exists, register the deployment.

    Deploying the same name again updates it (parameters, schedule, pool) in place."""
    from codexflow.compiler.inputs import resolve_inputs
    from codexflow.runtime.prefect_env import configure_prefect, server_url
    from codexflow.spec import load_spec

    spec = load_spec(request.spec_path)  # SpecError: every problem, exit 2
    schedule = spec.schedule
    scheduled_inputs = dict(schedule.inputs) if schedule else {}
    inputs = resolve_inputs(spec, {**scheduled_inputs, **request.inputs})
    cron = request.cron or (schedule.cron if schedule else None)
    timezone = request.timezone or (schedule.timezone if schedule else None) or "UTC"
    if cron:
        _check_cron(cron, timezone)
    api_url = server_url()
    if api_url is None:
        raise DeployError(
            "no Prefect server configured: a deployment lives on a server "
            "(start one with `codexflow server`, then `export PREFECT_API_URL=http://127.0.0.1:4200/api`)"
        )
    configure_prefect(Path(request.state_dir))
    project = (request.project_dir or Path.cwd()).resolve()
    entrypoint = FILE_ENTRYPOINT if (project / FLOW_FILE).is_file() else MODULE_ENTRYPOINT
    parameters: dict[str, Any] = {
        "spec": _relative(request.spec_path.resolve(), project),
        "inputs": inputs,
        "state_dir": request.state_dir,
    }
    if request.workspace:
        parameters["workspace"] = request.workspace
    if request.approve:
        parameters["approve"] = list(request.approve)
    if request.model:
        parameters["model"] = request.model
    name = request.name or spec.name
    try:
        return _register(request, spec.name, name, project, entrypoint, parameters, cron, timezone,
                         api_url, spec.description)  # fmt: skip
    except CodexflowError:
        raise
    except Exception as exc:  # httpx, Prefect's own errors: say where, not a traceback
        raise DeployError(f"Prefect at {api_url} refused the deployment: {exc}") from exc


def _register(
    request: DeployRequest,
    spec_name: str,
    name: str,
    project: Path,
    entrypoint: str,
    parameters: dict[str, Any],
    cron: str | None,
    timezone: str | None,
    api_url: str,
    description: str,
) -> Deployed:
    from prefect import flow as prefect_flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.exceptions import ObjectNotFound

    pool_created = _ensure_pool(request.pool)
    # A local source: the pull step is `set_working_directory` to the project, no code copied.
    source: Any = prefect_flow.from_source(source=str(project), entrypoint=entrypoint)
    full_name = f"{source.name}/{name}"
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(full_name)
            created = False
        except ObjectNotFound:
            created = True
    schedules = [CronSchedule(cron=cron, timezone=timezone)] if cron else []
    deployment: Any = source.to_deployment(
        name=name,
        schedules=schedules,
        parameters=parameters,
        description=description or f"codexflow apply {parameters['spec']}",
        tags=["codexflow", f"spec:{spec_name}"],
        paused=request.paused,
        work_pool_name=request.pool,
    )
    deployment_id: Any = deployment.apply(work_pool_name=request.pool)
    if not cron and not created:  # Prefect keeps the old schedules on an update without one
        with get_client(sync_client=True) as client:
            for old in client.read_deployment_schedules(deployment_id):
                client.delete_deployment_schedule(deployment_id, old.id)
    return Deployed(
        deployment_id=str(deployment_id),
        full_name=full_name,
        pool=request.pool,
        pool_created=pool_created,
        created=created,
        cron=cron,
        timezone=timezone if cron else None,
        parameters=parameters,
        entrypoint=entrypoint,
        project_dir=str(project),
        api_url=api_url,
    )


def _ensure_pool(pool: str) -> bool:
    """Create a `process` work pool named `pool` unless one exists; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
            return False
        except ObjectNotFound:
            pass
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:  # another deploy created it meanwhile
            return False
        return True


def _relative(path: Path, project: Path) -> str:
    """The spec's path as the worker opens it: relative to the project when inside it."""
    try:
        return path.relative_to(project).as_posix()
    except ValueError:
        return str(path)


def _check_cron(cron: str, timezone: str) -> None:
    """The spec's schedule is checked when it is loaded; `--cron`/`--timezone` are checked here."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from codexflow.spec.checks import cron_problem

    problem = cron_problem(cron)
    if problem:
        raise SpecError([Issue("--cron", 0, 0, "", problem, "five fields, e.g. `0 3 * * 1`")])
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(
            [Issue("--timezone", 0, 0, "", f"unknown time zone {timezone!r}", "e.g. Europe/Paris")]
        ) from None
