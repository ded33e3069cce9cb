"""The Tool type: a name, a description, a JSON Schema of parameters, and how to run it."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, ValidationError, create_model

from codexflow.errors import ToolError

if TYPE_CHECKING:
    from codexflow.tools.context import ToolContext

# What OpenAI and Anthropic accept as a function name.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Runner = Callable[["ToolContext", dict[str, Any]], str]


@dataclass(frozen=True)
class Tool:
    """One callable tool. `run` gets validated arguments and returns the text the model reads.

    `run` raises ToolError for anything the model should be told (bad input, missing file...).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    run: Runner
    approval: bool = False
    # Decides per call whether a person must approve (e.g. a shell argv that pushes).
    dangerous: Callable[[dict[str, Any]], bool] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise ToolError(f"tool name {self.name!r} must match {TOOL_NAME.pattern}")

    def schema(self) -> dict[str, Any]:
        """The OpenAI tool definition the model sees."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        return self.approval or (self.dangerous is not None and self.dangerous(arguments))


def _takes_context(param: inspect.Parameter, hints: dict[str, Any]) -> bool:
    hint = hints.get(param.name)
    return param.name == "ctx" or getattr(hint, "__name__", "") == "ToolContext"


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    # Titles are noise for the model; the function name and descriptions carry the meaning.
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def tool_from_function(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    approval: bool = False,
) -> Tool:
    """Wrap a typed Python function as a Tool; its parameters' schema comes from its type hints.

    A first parameter named `ctx` (or typed ToolContext) receives the ToolContext and is hidden
    from the model. Arguments are validated by pydantic before the call; unknown ones are errors.
    """
    signature = inspect.signature(func)
    from codexflow.tools.context import ToolContext

    try:
        # ToolContext is often imported under TYPE_CHECKING only: supply it.
        hints = typing.get_type_hints(func, localns={"ToolContext": ToolContext})
    except Exception as exc:  # unresolvable annotations: the tool cannot describe itself
        raise ToolError(f"cannot read the type hints of {func.__qualname__}: {exc}") from exc
    params = list(signature.parameters.values())
    pass_context = bool(params) and _takes_context(params[0], hints)
    if pass_context:
        params = params[1:]
    fields: dict[str, Any] = {}
    for param in params:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolError(f"{func.__qualname__}: *args/**kwargs cannot be described to a model")
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model = create_model(
        f"{func.__name__}_arguments",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        **fields,
    )
    parameters = _clean_schema(model.model_json_schema())
    parameters.setdefault("properties", {})

    def run(ctx: ToolContext, arguments: dict[str, Any]) -> str:
        try:
            values = model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(_explain(exc)) from None
        kwargs = {p.name: getattr(values, p.name) for p in params}
        result = func(ctx, **kwargs) if pass_context else func(**kwargs)
        return result if isinstance(result, str) else _to_text(result)

    doc = inspect.getdoc(func) or ""
    return Tool(
        name=name or func.__name__,
        description=description or doc.strip() or func.__name__,
        parameters=parameters,
        run=run,
        approval=approval,
    )


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "invalid arguments: " + "; ".join(parts)


def _to_text(value: Any) -> str:
    import json

    if value is None:
        return "ok"
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
