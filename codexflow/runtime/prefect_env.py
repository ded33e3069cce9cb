"""Prefect's settings, pinned by codexflow: quiet, private, fast to start, and never read from files
an agent could have written.

Prefect 3.8 reads settings from the environment, then `.env`, `prefect.toml` and
`pyproject.toml` in the current directory, then a profiles file; its logging config is a YAML
file under PREFECT_HOME (a dictConfig: a handler can be any callable, so the file runs code).
In the `codexflow init` layout the current directory is the workspace, which agents write. So
codexflow pins the profiles file and the logging config by environment variable, turns the
three file sources off in this process, and gives every resolved setting as an environment
variable to the temporary server Prefect starts as a subprocess (the environment outranks the
files there too), which codexflow starts in PREFECT_HOME (so that its `python -m uvicorn`
does not import modules from the workspace either).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any


def prefect_environment(state_dir: Path, verbose: bool = False) -> dict[str, str]:
    """The environment codexflow gives Prefect; a value the user already set always wins.

    Why each one (measured with prefect 3.8.8, see README):
    - PREFECT_HOME under the state dir: Prefect's SQLite history lives with the project instead
      of ~/.prefect, and a test or CI run never touches a user's database.
    - analytics off: nothing leaves the machine unless the spec asks for it.
    - logging at WARNING: per-task console logging cost ~15% of Prefect's CPU.
    - a longer ephemeral start-up timeout: a fresh PREFECT_HOME runs migrations (18 s here).
    - no event persister in a server this process starts: task runs are still recorded (by the
      task-run recorder) and shown in the UI; only the raw event feed is not stored. It halves
      the time a run waits at its end for the embedded server to store its history.
    - the profiles file and the logging config pinned (the latter to the one Prefect ships, not
      a file under PREFECT_HOME), plugins off: see the module docstring.
    """
    home = Path(state_dir).resolve() / "prefect"
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
        "PREFECT_PLUGINS_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "INFO" if verbose else "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
        # The ephemeral server's own log lines would interleave with the live progress.
        "PREFECT_LOGGING_SERVER_LEVEL": "INFO" if verbose else "WARNING",
    }
    packaged = packaged_logging_config()
    if packaged is not None:
        env["PREFECT_LOGGING_CONFIG_PATH"] = str(packaged)
    return {key: value for key, value in env.items() if key not in os.environ}


def packaged_logging_config() -> Path | None:
    """The logging.yml inside the installed prefect package (found without importing it)."""
    spec = importlib.util.find_spec("prefect")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "logging" / "logging.yml"
        if path.is_file():
            return path
    return None


def configure_prefect(state_dir: Path, verbose: bool = False) -> None:
    """Set the environment, then pin every setting (see the module docstring).

    The environment must be set before `prefect` is first imported in this process: what
    Prefect reads while it is imported (plugins, analytics) comes from it.
    """
    os.environ.update(prefect_environment(state_dir, verbose))
    pin_prefect_settings()


_PINNED_SOURCES = (
    "FilteredDotEnvSettingsSource",
    "PrefectTomlConfigSettingsSource",
    "PyprojectTomlConfigSettingsSource",
)


def pin_prefect_settings() -> None:
    """Turn off the file sources of Prefect's settings in this process and resolve the settings
    again. Once per environment: an in-process caller (the gateway, a benchmark) that applies
    again with the same PREFECT_* variables does not pay for it (~0.1 s) a second time."""
    global _PINNED_FOR
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("PREFECT_")))
    if environment == _PINNED_FOR:
        return
    import prefect.settings.base as base
    from pydantic_settings import PydanticBaseSettingsSource

    class NoFileSource(PydanticBaseSettingsSource):
        """Stands in for the `.env`, `prefect.toml` and `pyproject.toml` sources: reads nothing."""

        def __init__(self, settings_cls: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(settings_cls)

        def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
            return None, field_name, False

        def __call__(self) -> dict[str, Any]:
            return {}

    for name in _PINNED_SOURCES:
        if hasattr(base, name):
            setattr(base, name, NoFileSource)
    import prefect.context

    # The settings Prefect resolved while it was imported (before this) are replaced.
    prefect.context.refresh_global_settings_context()
    if not server_url():
        _start_temporary_server_in_home(Path(os.environ["PREFECT_HOME"]))
    _PINNED_FOR = environment


_PINNED_FOR: tuple[tuple[str, str], ...] | None = None


def _resolved_settings() -> dict[str, str]:
    """Every resolved setting not already in the environment, for the temporary server's
    environment only: exported into this process's own environment they would outlive the
    run, and every later child (a test's Prefect server, a worker, another apply on another
    state dir) would inherit them."""
    from prefect.settings import get_current_settings

    variables = get_current_settings().to_environment_variables(exclude_unset=False)
    return {key: value for key, value in variables.items() if key not in os.environ}


class _InDirectory(types.ModuleType):
    """`subprocess`, except that a Popen without a cwd starts in `directory`."""

    def __init__(self, real: types.ModuleType, directory: Path) -> None:
        super().__init__(real.__name__)
        self._real = real
        self._directory = directory

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def Popen(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cwd", str(self._directory))
        env = dict(kwargs.get("env") or os.environ)
        for key, value in _resolved_settings().items():  # the environment outranks the files
            env.setdefault(key, value)
        kwargs["env"] = env
        command = list(kwargs.pop("args", None) or args[0])
        if command[1:3] != ["-m", "uvicorn"]:
            return self._real.Popen(command, *args[1:], **kwargs)
        # The server ends itself when this process dies, however it dies (a `kill -9` of the
        # apply included): it holds the read end of a pipe whose only write end is ours, and
        # the kernel closes that when we end. (PR_SET_PDEATHSIG would fire when the *thread*
        # that started it ends, and needs a preexec_fn, unsafe beside threads.)
        read_end, write_end = os.pipe()  # both non-inheritable; the read end is passed on
        try:
            lifeline = ["-m", "codexflow.runtime.server_lifeline", str(read_end)]
            watched = [command[0], *lifeline, *command[3:]]
            process = self._real.Popen(watched, pass_fds=(read_end,), **kwargs)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        _LIFELINES.append(write_end)  # open for as long as this process lives
        return process


_LIFELINES: list[int] = []


def _start_temporary_server_in_home(home: Path) -> None:
    """Prefect's embedded mode starts its API server as `python -m uvicorn` in our current
    directory, where its settings would again come from `prefect.toml`, `.env` and
    `pyproject.toml` for every setting left unset, and where `python -m` imports modules
    first: start it in PREFECT_HOME instead (in the state dir, which no tool can write)."""
    import prefect.server.api.server as server_module

    if not isinstance(server_module.subprocess, _InDirectory):
        home.mkdir(parents=True, exist_ok=True)
        server_module.subprocess = _InDirectory(server_module.subprocess, home)


def prefect_imported() -> bool:
    return "prefect" in sys.modules


def server_url() -> str | None:
    """The API of a running Prefect server the user pointed us at, or None (embedded mode)."""
    return os.environ.get("PREFECT_API_URL") or None


def ui_url(flow_run_id: str) -> str | None:
    """Link to the flow run in the Prefect UI, when a server (not the embedded one) is used."""
    api = server_url()
    if api is None:
        return None
    base = os.environ.get("PREFECT_UI_URL") or api.rstrip("/").removesuffix("/api")
    return f"{base}/runs/flow-run/{flow_run_id}"
