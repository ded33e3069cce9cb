"""The `codexflow` command line: parses options, calls one library verb, renders its result."""

from __future__ import annotations

import importlib
import json
import os
import sys
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from codexflow.errors import BudgetExceeded, CodexflowError, Issue, SpecError

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2

app = typer.Typer(
    name="codexflow",
    help="Describe a swarm of AI agents in one validated YAML file and run it as a Prefect flow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"codexflow {version('codexflow')}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Describe a swarm of AI agents in one validated YAML file and run it as a Prefect flow."""


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _render_issues(console: Console, issues: list[Issue]) -> None:
    for issue in issues:
        where = issue.where
        loc = f" [bold]{issue.loc}[/bold]:" if issue.loc else ""
        hint = f" [dim]({_escape(issue.hint)})[/dim]" if issue.hint else ""
        if issue.severity == "warning":
            where = f"[yellow]{where}: warning[/yellow]"
        else:
            where = f"[red]{where}[/red]"
        console.print(f"{where}:{loc} {_escape(issue.message)}{hint}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@app.command()
def validate(
    specs: Annotated[list[Path], typer.Argument(help="Spec files to check.", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON for scripts.")
    ] = False,
) -> None:
    """Parse and check spec files: every problem of every file, as `file:line:col: where: what`.

    Exit 0 when all are valid, 2 when any is not. Imports no model or orchestrator code.
    """
    from codexflow.spec import load_spec_source

    results: list[dict[str, Any]] = []
    for path in specs:
        try:
            spec, source = load_spec_source(path)
            warnings = [issue.to_dict() for issue in source.warnings]
            results.append(
                {"path": str(path), "valid": True, "name": spec.name, "issues": warnings}
            )
        except SpecError as error:
            results.append(
                {"path": str(path), "valid": False, "issues": [i.to_dict() for i in error.issues]}
            )
    failed = [result for result in results if not result["valid"]]
    if as_json:
        print(json.dumps({"valid": not failed, "files": results}, indent=2))
    else:
        console = _out()
        for result in results:
            if result["valid"]:
                _render_issues(console, [Issue(**issue) for issue in result["issues"]])
                console.print(f"[green]ok[/green] {result['path']} ({result['name']})")
            else:
                _render_issues(console, [Issue(**issue) for issue in result["issues"]])
        if failed:
            count = sum(
                1 for result in failed for i in result["issues"] if i["severity"] == "error"
            )
            console.print(
                f"[red]{count} problem{'s' if count != 1 else ''} in {len(failed)} file{'s' if len(failed) != 1 else ''}[/red]"
            )
    raise typer.Exit(EXIT_INVALID if failed else EXIT_OK)


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the spec format (for editors and other tools)."""
    from codexflow.spec.schema import render_schema

    text = render_schema()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        _err().print(f"wrote {output}")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter spec.")] = Path(
        "swarm.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter spec (a coder and a reviewer) and the JSON Schema editors use to check it."""
    from codexflow.spec.schema import render_schema

    if path.exists() and not force:
        _err().print(f"[red]{path} exists[/red]; pass --force to overwrite it")
        raise typer.Exit(EXIT_INVALID)
    starter = resources.files("codexflow.spec").joinpath("starter.yaml").read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(starter.replace("name: starter", f"name: {_spec_name(path)}"), encoding="utf-8")
    schema_file = path.parent / ".codexflow" / "swarm.schema.json"
    schema_file.parent.mkdir(parents=True, exist_ok=True)
    schema_file.write_text(render_schema(), encoding="utf-8")
    _out().print(f"wrote {path} (check it with `codexflow validate {path}`)")


class PlanFormat(StrEnum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"
    json = "json"


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Set an input: `--set target=src/` (repeatable; JSON for non-strings)."
    ),
]


@app.command()
def plan(
    spec_path: Annotated[
        Path, typer.Argument(metavar="SPEC", help="The spec file.", show_default=False)
    ],
    format: Annotated[
        PlanFormat, typer.Option("--format", "-f", help="text, mermaid, dot or json.")
    ] = PlanFormat.text,
    set_: SetOption = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Plan every agent on this model.")
    ] = None,
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", help="Where `apply` keeps its cache: cached steps are marked."),
    ] = Path(".codexflow"),
) -> None:
    """Compile a spec and show what would run: steps, agents, dependencies, parallel groups,
    which steps are cached (they will not run again) and a rough cost range. Makes no LLM call
    and starts no orchestrator.
    """
    from codexflow.compiler import compile_spec
    from codexflow.compiler.estimate import estimate_plan, spec_prices
    from codexflow.compiler.inputs import parse_assignments
    from codexflow.compiler.render import render_dot, render_json, render_mermaid, render_text
    from codexflow.providers.price_table import model_prices
    from codexflow.spec import load_spec_source

    spec, source = load_spec_source(spec_path)
    _render_issues(_err(), source.warnings)
    if model:
        from codexflow.api import with_model

        spec = with_model(spec, model)
    compiled = compile_spec(spec, parse_assignments(set_ or []))
    cached = None
    if (state_dir / "results").is_dir():  # runtime.store.RESULTS_DIR, without importing it
        from codexflow.runtime import cache_status

        cached = cache_status(compiled, state_dir)
    max_usd = spec.budget.max_usd if spec.budget else None
    estimate = estimate_plan(compiled, spec_prices(spec, model_prices), cached, max_usd)
    if format is PlanFormat.json:
        sys.stdout.write(render_json(compiled, estimate, cached))
    elif format is PlanFormat.mermaid:
        sys.stdout.write(render_mermaid(compiled))
    elif format is PlanFormat.dot:
        sys.stdout.write(render_dot(compiled))
    else:
        _out().print(render_text(compiled, estimate, cached))


@app.command()
def apply(
    spec_path: Annotated[
        Path, typer.Argument(metavar="SPEC", help="The spec file.", show_default=False)
    ],
    set_: SetOption = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Run every agent on this litellm model.")
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay", help="Answer every model call from this cassette (offline, no key)."
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record", help="Record every model call into this cassette (secrets removed)."
        ),
    ] = None,
    script: Annotated[
        Path | None,
        typer.Option("--script", help="Answer `scripted/...` models from this script file."),
    ] = None,
    approve: Annotated[
        list[str] | None,
        typer.Option(
            "--approve", "-a", help="Approve a task's gate or a tool ahead of time (repeatable)."
        ),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore cached results: pay for every call again.")
    ] = False,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace", "-w", help="Confine tools to this directory instead of the spec's."
        ),
    ] = None,
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", help="Where the cache, run records and Prefect's data live."),
    ] = Path(".codexflow"),
    no_prefect: Annotated[
        bool,
        typer.Option(
            "--no-prefect",
            help="Run without Prefect (no flow run history); same cache and records.",
        ),
    ] = False,
    allow_unsafe_shell: Annotated[
        bool,
        typer.Option(
            "--allow-unsafe-shell", help="Run shell tools even where the sandbox is missing."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Exit at once if another apply is using the state dir, instead of waiting.",
        ),
    ] = False,
) -> None:
    """Run a spec: every step as a Prefect task run, with live progress and a summary table.

    A re-run reuses every result already paid for: only steps that did not finish, or whose
    definition or inputs changed, call a model again. Exit 0 when every step succeeded, 1 when a
    step failed, a gate was denied or the run was stopped, 2 when the spec or inputs are invalid.
    """
    from codexflow.api import ApplyOptions, parse_approvals
    from codexflow.api import apply as apply_spec
    from codexflow.compiler.inputs import parse_assignments
    from codexflow.runtime import ConsoleObserver, render_summary

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    options = ApplyOptions(
        inputs=parse_assignments(set_ or []),
        model=model,
        record=record,
        replay=replay,
        script=script,
        workspace=workspace,
        state_dir=state_dir,
        fresh=fresh,
        approve=parse_approvals(approve or []),
        ask=_ask if interactive else None,
        ask_budget=_ask_budget if interactive else None,
        engine="local" if no_prefect else "prefect",
        allow_unsafe=allow_unsafe_shell,
        verbose=verbose,
        wait_for_state=not no_wait,
        on_wait=lambda message: _err().print(f"[yellow]{_escape(message)}[/yellow]"),
        on_warnings=lambda warnings: _render_issues(_err(), warnings),
    )
    result = apply_spec(spec_path, options, ConsoleObserver(_err()))
    console = _out()
    console.print(render_summary(result))
    if result.reason:
        console.print(f"[yellow]{_escape(result.reason)}[/yellow]")
    console.print(f"run record: {result.run_dir}")
    if result.prefect_flow_run_id:
        link = f" — {result.ui_url}" if result.ui_url else ""
        console.print(f"Prefect flow run: {result.prefect_flow_run_id}{link}")
        if not result.ui_url:  # embedded: a temporary server started (~10 s) for this run only
            _err().print(
                "[dim]Prefect ran embedded: a temporary server started for this run alone "
                "(most of its first ~10 s). For runs that start in about a second and keep "
                "their history in a UI, run `codexflow server` in another shell and "
                "export PREFECT_API_URL=http://127.0.0.1:4200/api[/dim]"
            )
    raise typer.Exit(result.exit_code)


def _ask(question: str) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(_escape(question), console=_err(), default=False)


def _ask_budget(exc: BudgetExceeded) -> float | None:
    from rich.prompt import FloatPrompt

    console = _err()
    console.print(f"[yellow]{_escape(exc.message)}[/yellow]")
    unit = "tokens" if exc.limit_kind == "tokens" else "USD"
    answer = FloatPrompt.ask(f"New limit in {unit} (0 stops the run)", console=console, default=0.0)
    return answer if answer > exc.limit else None


# deploy, runs / runs show, server: the operations commands live in their own module.
from codexflow.cli_ops import register as _register_ops  # noqa: E402

_register_ops(app)


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Report what protects the tools on this machine: sandbox, path confinement, user namespace,
    seccomp, memory cgroup, process limits (each present or missing). Exit 1 when the sandbox
    cannot run here (shell, git and MCP tools would refuse).
    """
    from codexflow.tools import describe_protection

    report = describe_protection()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        console = _out()
        bwrap = report["bwrap"]
        mark = "[green]ok[/green]" if bwrap["working"] else "[red]missing[/red]"
        console.print(
            f"{mark}  sandbox: {bwrap['version'] or 'bubblewrap not found'}: {bwrap['effect']}"
        )
        if not bwrap["working"]:
            console.print("     install it: `apt-get install bubblewrap` (Debian/Ubuntu)")
        console.print(
            f"[green]ok[/green]  paths: {report['path_resolution']} (no escape from the workspace)"
        )
        limit = report["process_limit"]
        limit_mark = "[yellow]weak[/yellow]" if limit.startswith("none") else "[green]ok[/green]"
        console.print(
            f"{limit_mark}  processes: {limit}; prlimit {'yes' if report['prlimit'] else 'no'}"
        )
        for key, label in (
            ("user_namespace", "user namespace"),
            ("seccomp", "seccomp"),
            ("memory_cgroup", "memory cgroup"),
        ):
            item = report[key]
            mark = "[green]present[/green]" if item["present"] else "[yellow]missing[/yellow]"
            console.print(f"{mark}  {label}: {item['effect']}")
        landlock = report["landlock_abi"]
        console.print(
            f"info landlock: {'ABI ' + str(landlock) if landlock else 'not available'} (detected, not used)"
        )
    raise typer.Exit(EXIT_OK if report["bwrap"]["working"] else EXIT_RUN_FAILED)


from codexflow.cli_gateway import register as _register_gateway  # noqa: E402

_register_gateway(app)  # `codexflow mcp` and `codexflow api`


def _spec_name(path: Path) -> str:
    import re

    name = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-")
    return name if name and name[0].isalnum() else "starter"


from codexflow.cli_memory import agents, memory_app  # noqa: E402  (shared memory commands)

app.add_typer(memory_app, name="memory")
app.command("agents")(agents)


def _click_errors(name: str) -> tuple[type[BaseException], ...]:
    """`name` from click and from the click that typer bundles (typer >= 0.29 raises its own)."""
    import click

    found: list[type[BaseException]] = []
    for module_name in ("click.exceptions", "typer._click.exceptions", "typer.exceptions"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in found:
            found.append(cls)
    if not found:  # pragma: no cover - click always has it
        found.append(getattr(click.exceptions, name))
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (tests call this)."""
    exits, aborts = _click_errors("Exit"), _click_errors("Abort")
    usage_errors, click_errors = _click_errors("UsageError"), _click_errors("ClickException")
    no_args = _click_errors("NoArgsIsHelpError")
    try:
        result = app(args=argv, standalone_mode=False, prog_name="codexflow")
    except exits as done:
        return int(getattr(done, "exit_code", EXIT_OK) or EXIT_OK)
    except no_args:
        return EXIT_INVALID  # the help is already printed: nothing was asked of us
    except usage_errors as exc:  # a wrong command, option or value: usage and exit 2
        exc.show()  # type: ignore[attr-defined]
        return EXIT_INVALID
    except click_errors as exc:
        exc.show()  # type: ignore[attr-defined]
        return EXIT_INVALID
    except aborts:
        _err().print("aborted")
        return 130
    except SpecError as error:
        _render_issues(_err(), error.issues)
        return EXIT_INVALID
    except CodexflowError as error:
        _err().print(f"[red]error:[/red] {_escape(error.message)}")
        return EXIT_RUN_FAILED
    except (
        Exception
    ) as exc:  # a bug of ours: say so plainly; --verbose / CODEXFLOW_DEBUG show it all
        if (
            "-v" in (argv or sys.argv)
            or "--verbose" in (argv or sys.argv)
            or os.environ.get("CODEXFLOW_DEBUG")
        ):
            raise
        _err().print(
            f"[red]internal error:[/red] {type(exc).__name__}: {_escape(str(exc))}\n"
            "run again with --verbose (or CODEXFLOW_DEBUG=1) for the traceback, and report it"
        )
        return EXIT_RUN_FAILED
    return result if isinstance(result, int) else EXIT_OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
