"""Pydantic models of the spec format `codexflow/v1`: the single source of its JSON Schema."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"

# Names that a task's `agent:` may use besides the spec's own agents.
SWARM = "swarm"
AUTO = "auto"

# Agent roles that come with a built-in system prompt (the agents step owns the texts).
PRESET_ROLES = ("coordinator", "coder", "tester", "reviewer")

# Python types of the JSON types an input may declare (a bool is not an integer here).
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def is_json_type(value: Any, kind: str) -> bool:
    """Whether `value` is of the JSON type `kind`; booleans are only booleans."""
    expected = JSON_TYPES[kind]
    if isinstance(value, bool):
        return bool in expected
    return isinstance(value, expected)


# The error type of a repeated list item; spec checks report it where the repeat is written.
UNIQUE_ITEMS = "unique_items"

Identifier = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=64)]
PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are errors and nothing is coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class InputSpec(SpecModel):
    """A run parameter, referenced in templates as `{{ inputs.NAME }}` and set with `--set`."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = Field(
        "string", description="JSON type of the value; `--set` values are parsed to it."
    )
    default: Any = Field(
        None,
        description="Value used when the run does not set it; without one the input is required.",
    )
    description: str = Field("", description="What the input means, shown by `codexflow plan`.")
    enum: list[Any] | None = Field(None, description="The only values allowed, if set.")


class DefaultsSpec(SpecModel):
    """Settings inherited by every agent and task unless they set their own."""

    model: str = Field(
        "openai/gpt-4o-mini",
        min_length=1,
        description="Any litellm model string, e.g. `anthropic/claude-sonnet-4-5`.",
    )
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="Upper bound on completion tokens per model call (provider default when unset).",
    )
    retries: int = Field(
        3,
        ge=0,
        le=20,
        description="Retries of a model call on transient failures (429, 5xx, timeouts).",
    )
    retry_delay: float = Field(
        2.0,
        ge=0,
        le=600,
        description="Base delay in seconds; grows exponentially with jitter, honoring Retry-After.",
    )
    timeout: PositiveSeconds = Field(600, description="Seconds a task may run before it is cut.")
    max_turns: int = Field(
        20, ge=1, le=500, description="Bound on the tool-calling loop of one agent step."
    )
    max_concurrency: int = Field(
        8,
        ge=1,
        le=1024,
        description="Steps of one run in flight at once (the width of the task runner).",
    )


class PriceSpec(SpecModel):
    """A model's price, for models litellm's price table does not know (local, custom)."""

    input: float = Field(ge=0, description="USD per million input (prompt) tokens.")
    output: float = Field(ge=0, description="USD per million output (completion) tokens.")

    def per_token(self) -> tuple[float, float]:
        """(USD per input token, USD per output token)."""
        return self.input / 1_000_000, self.output / 1_000_000


class ProviderSpec(SpecModel):
    """Limits and connection settings for one provider (the prefix of a model string)."""

    max_concurrency: int | None = Field(
        None, ge=1, description="Calls to this provider in flight at once."
    )
    rpm: int | None = Field(None, ge=1, description="Requests per minute to this provider.")
    api_base: str | None = Field(
        None,
        min_length=1,
        description="Base URL of an OpenAI-compatible endpoint, e.g. `http://127.0.0.1:8000/v1`.",
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Name of the environment variable that holds the API key (never the key itself).",
    )
    price: PriceSpec | None = Field(
        None,
        description="Price per million tokens of this provider's models, used instead of "
        "litellm's table (so that `budget.max_usd` holds for models it does not price).",
    )


class AgentSpec(SpecModel):
    """One agent: who it is, which model it uses, and which tools it may call."""

    role: str = Field(
        ...,
        min_length=1,
        description="Free text; `coordinator`, `coder`, `tester` and `reviewer` come with a built-in system prompt.",
    )
    goal: str = Field(
        "", description="One sentence the agent works towards; part of its system prompt."
    )
    instructions: str | None = Field(
        None, description="The system prompt; the role's preset is used when omitted."
    )
    model: str | None = Field(
        None, min_length=1, description="litellm model string; `defaults.model` when unset."
    )
    fallbacks: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Models tried in order once the primary model's retries are exhausted.",
    )
    temperature: float | None = Field(
        None, ge=0, le=2, description="Overrides `defaults.temperature`."
    )
    tools: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Tools this agent may call: built-ins or names under `tools:` (an MCP entry `name` or `name.tool`).",
    )
    capabilities: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="What the agent is good at; `agent: auto` tasks are matched against it.",
    )
    replicas: int = Field(
        1, ge=1, le=256, description="How many copies of this agent may work at once."
    )
    max_turns: int | None = Field(None, ge=1, le=500, description="Overrides `defaults.max_turns`.")
    writable: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        description="Glob patterns (relative to the workspace) this agent may write; anywhere in the workspace when unset.",
    )


class HierarchicalTopology(SpecModel):
    """The coordinator decomposes a task, workers do the parts in parallel, the coordinator merges."""

    kind: Literal["hierarchical"] = Field(description="Topology kind.")
    coordinator: Identifier = Field(description="The agent that decomposes and merges.")
    members: list[Identifier] | None = Field(
        None, min_length=1, description="Workers; every other agent when unset."
    )


class StarTopology(SpecModel):
    """The hub sends a task to every spoke in parallel and merges; spokes see only the hub."""

    kind: Literal["star"] = Field(description="Topology kind.")
    coordinator: Identifier = Field(description="The hub.")
    members: list[Identifier] | None = Field(
        None, min_length=1, description="Spokes; every other agent when unset."
    )


class RingTopology(SpecModel):
    """Agents in order, each refining the previous answer, for `rounds` laps."""

    kind: Literal["ring"] = Field(description="Topology kind.")
    order: list[Identifier] = Field(
        ...,
        min_length=2,
        json_schema_extra={"uniqueItems": True},
        description="The agents, in the order they take turns (each once).",
    )
    rounds: int = Field(1, ge=1, le=20, description="Laps around the ring.")

    @field_validator("order")
    @classmethod
    def _each_once(cls, order: list[str]) -> list[str]:
        if len(set(order)) != len(order):
            # The spec checks name the repeated agent at its position; this keeps the model
            # and the JSON Schema (uniqueItems) in agreement.
            raise PydanticCustomError(UNIQUE_ITEMS, "an agent is listed twice")
        return order


class MeshTopology(SpecModel):
    """Every agent answers in parallel; each further round sees all peers' previous answers; then a merge."""

    kind: Literal["mesh"] = Field(description="Topology kind.")
    members: list[Identifier] | None = Field(
        None, min_length=2, description="The peers; every agent when unset."
    )
    rounds: int = Field(
        1, ge=0, le=20, description="Rounds after the first in which each peer sees the others."
    )
    coordinator: Identifier | None = Field(
        None, description="The agent that writes the final merge; the first peer when unset."
    )


TopologySpec = Annotated[
    HierarchicalTopology | StarTopology | RingTopology | MeshTopology,
    Field(discriminator="kind"),
]


class ToolArgumentSpec(SpecModel):
    """One typed argument of a shell tool, filled in by the model."""

    type: Literal["string", "integer", "number", "boolean"] = Field(
        "string", description="JSON type of the value."
    )
    description: str = Field("", description="What the argument means; the model reads it.")
    default: str | int | float | bool | None = Field(
        None, description="Value when the model omits it."
    )
    enum: list[str | int | float] | None = Field(
        None, description="The only values allowed, if set."
    )
    pattern: str | None = Field(
        None, description="Regular expression a string value must match in full."
    )


class ShellToolSpec(SpecModel):
    """A command run in the sandbox as an argv list (never through a shell)."""

    kind: Literal["shell"] = Field(description="Tool kind.")
    command: str | list[Annotated[str, Field(min_length=1)]] = Field(
        ...,
        description="argv as a list, or a string split like a shell would (no shell runs it); "
        "`{{ arg }}` fills in a typed argument as one whole word.",
    )
    description: str = Field("", description="What the tool does; the model reads it.")
    args: dict[Identifier, ToolArgumentSpec] = Field(
        default_factory=dict, description="Typed arguments the model may pass."
    )
    timeout: PositiveSeconds = Field(
        300, description="Seconds before the whole process group is killed."
    )
    approval: bool = Field(False, description="A person approves each call before it runs.")


class PythonToolSpec(SpecModel):
    """A Python function `module:function`, imported only when the spec is applied."""

    kind: Literal["python"] = Field(description="Tool kind.")
    ref: str = Field(
        ...,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
        description="Import path `package.module:function`.",
    )
    description: str = Field(
        "", description="What the tool does; the function's docstring when empty."
    )
    approval: bool = Field(False, description="A person approves each call before it runs.")
    trusted: bool = Field(
        False,
        description="Allow a ref into the standard library, codexflow, or another package that "
        "reaches the host (refused otherwise): the function runs in codexflow's own process.",
    )


class McpToolSpec(SpecModel):
    """A stdio MCP server; its tools are listed and callable like built-ins."""

    kind: Literal["mcp"] = Field(description="Tool kind.")
    command: list[Annotated[str, Field(min_length=1)]] = Field(
        ..., min_length=1, description="argv that starts the server."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment for the server; `${NAME}` takes a variable from the caller's environment.",
    )
    include: list[str] | None = Field(
        None, description="Only these of the server's tools; all when unset."
    )
    timeout: PositiveSeconds = Field(60, description="Seconds per tool call.")
    approval: bool = Field(False, description="A person approves each call before it runs.")
    network: bool = Field(
        False, description="The sandboxed server may reach the network (it has none otherwise)."
    )
    read_only: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Host paths the sandboxed server may read besides /usr and the workspace, "
        "e.g. its virtualenv: absolute, or relative to the workspace.",
    )
    trusted: bool = Field(
        False,
        description="Run the server on the host, outside the sandbox, as the user (it can then "
        "read and change anything the user can).",
    )


class WebToolSpec(SpecModel):
    """Fetching web pages, limited to the hosts listed (the web is off otherwise)."""

    kind: Literal["web"] = Field(description="Tool kind.")
    allow_hosts: list[Annotated[str, Field(min_length=1)]] = Field(
        ..., min_length=1, description="Host names that may be fetched, e.g. `docs.python.org`."
    )
    description: str = Field("", description="What the tool is for; the model reads it.")
    approval: bool = Field(False, description="A person approves each call before it runs.")


ToolSpec = Annotated[
    ShellToolSpec | PythonToolSpec | McpToolSpec | WebToolSpec,
    Field(discriminator="kind"),
]


MemoryNamespace = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9-]*)$", max_length=63)]


class MemoryScopeSpec(SpecModel):
    """The namespaces one agent may read and write (`*` for every namespace)."""

    read: list[MemoryNamespace] = Field(
        default_factory=list, description="Namespaces the agent may read and search."
    )
    write: list[MemoryNamespace] = Field(
        default_factory=list, description="Namespaces the agent may write."
    )


EMBEDDING_PATTERN = r"^(minilm|hash|litellm:.+)$"


class MemorySpec(SpecModel):
    """Where the swarm's shared memory lives, how it is searched, and who may use what."""

    namespace: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        max_length=63,
        description="Keys are scoped to it; the spec's name when unset.",
    )
    database: str | None = Field(
        None,
        min_length=1,
        description="SQLAlchemy URL of the structured store, e.g. `sqlite:///memory.db` (relative "
        "to the spec file) or `postgresql+psycopg://host/db` for several machines; "
        "`<state-dir>/memory.db` when unset.",
    )
    vectors: str | None = Field(
        None,
        min_length=1,
        description="Chroma directory (relative to the spec file), or `http://host:port` for a "
        "Chroma server; `<state-dir>/chroma` when unset.",
    )
    embedding: str = Field(
        "minilm",
        json_schema_extra={"pattern": EMBEDDING_PATTERN},
        description="How entries are embedded for `memory_search`: `minilm` (all-MiniLM-L6-v2, "
        "offline), `hash` (lexical, for tests) or `litellm:<model>` (a provider's embedding model).",
    )
    max_entries: int | None = Field(
        None, ge=1, description="Entries kept per namespace; the oldest go first, on each write."
    )
    ttl: float | None = Field(
        None, gt=0, description="Seconds an entry lives after its last write (forever when unset)."
    )
    scopes: dict[Identifier, MemoryScopeSpec] = Field(
        default_factory=dict,
        description="Per agent: the namespaces it may read and write. An agent not listed reads "
        "and writes the spec's namespace only.",
    )

    @field_validator("embedding")
    @classmethod
    def _known_embedding(cls, value: str) -> str:
        if not re.match(EMBEDDING_PATTERN, value):
            raise ValueError(
                f"unknown embedding {value!r}: choose `minilm` (offline), `hash` (lexical, for "
                "tests) or `litellm:<model>` (e.g. `litellm:openai/text-embedding-3-small`)"
            )
        return value


class TaskSpec(SpecModel):
    """One unit of work: who does it, what they are asked, and what it waits for."""

    agent: Identifier = Field(
        ...,
        description="An agent's name; `swarm` (the whole swarm, coordinated by `topology`) or "
        "`auto` (the agent whose capabilities best cover `requires`).",
    )
    prompt: str = Field(
        ...,
        min_length=1,
        description="Jinja2 template; sees `inputs`, `tasks.<id>.output`, `item` (with for_each) and `memory`.",
    )
    description: str = Field("", description="What the task is for, shown by `codexflow plan`.")
    requires: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Capabilities the agent must have (used by `agent: auto`).",
    )
    depends_on: list[Identifier] = Field(
        default_factory=list, description="Tasks that must finish first."
    )
    for_each: str | list[Any] | None = Field(
        None,
        description="A list, or a template that renders to one (e.g. `{{ tasks.plan.output.units }}`): "
        "the task runs once per item, with `item` in its prompt.",
    )
    output: dict[str, Any] | None = Field(
        None,
        description="JSON Schema of the answer: it is parsed and validated (structured output).",
    )
    approval: bool = Field(False, description="A person approves before the task runs.")
    cache: bool = Field(
        True, description="Reuse the result of an identical earlier call instead of paying again."
    )
    retries: int | None = Field(
        None, ge=0, le=20, description="Overrides `defaults.retries` for this task."
    )
    timeout: PositiveSeconds | None = Field(
        None, description="Overrides `defaults.timeout` for this task."
    )


class BudgetSpec(SpecModel):
    """Per-run limits: the run pauses and asks before it would exceed them."""

    max_usd: float | None = Field(
        None, gt=0, description="US dollars a run may spend on model calls."
    )
    max_tokens: int | None = Field(
        None, gt=0, description="Prompt + completion tokens a run may use."
    )

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetSpec:
        if self.max_usd is None and self.max_tokens is None:
            raise ValueError("set max_usd, max_tokens or both (an empty budget limits nothing)")
        return self


class ScheduleSpec(SpecModel):
    """When `codexflow deploy` runs the spec."""

    cron: str = Field(
        ..., min_length=1, description="Five-field cron expression, e.g. `0 3 * * 1`."
    )
    timezone: str = Field("UTC", min_length=1, description="IANA time zone, e.g. `Europe/Paris`.")
    inputs: dict[Identifier, Any] = Field(
        default_factory=dict, description="Inputs set on scheduled runs."
    )


class Spec(SpecModel):
    """A swarm: agents, how they coordinate, the tools and memory they share, and their tasks."""

    api_version: Literal["codexflow/v1"] = Field(
        ..., alias="apiVersion", description="Version of the spec format."
    )
    name: str = Field(
        ...,
        pattern=NAME_PATTERN,
        max_length=63,
        description="Name of the swarm (and its Prefect flow).",
    )
    description: str = Field("", description="What the swarm does.")
    inputs: dict[Identifier, InputSpec] = Field(default_factory=dict, description="Run parameters.")
    defaults: DefaultsSpec = Field(
        default_factory=DefaultsSpec, description="Inherited by every agent and task."
    )
    providers: dict[Identifier, ProviderSpec] = Field(
        default_factory=dict,
        description="Limits per provider, keyed by the model string's prefix (`openai`).",
    )
    workspace: str = Field(
        ".",
        min_length=1,
        description="Directory (relative to the spec file) that file and shell tools are confined to.",
    )
    agents: dict[Identifier, AgentSpec] = Field(
        ..., min_length=1, description="The agents of the swarm."
    )
    topology: TopologySpec | None = Field(
        None, description="How agents coordinate on tasks given to `agent: swarm`."
    )
    tools: dict[Identifier, ToolSpec] = Field(
        default_factory=dict, description="Tools beyond the built-ins."
    )
    memory: MemorySpec | None = Field(
        None, description="Shared memory, kept across runs; under the state dir when unset."
    )
    tasks: dict[Identifier, TaskSpec] = Field(
        ..., min_length=1, description="The work, with its dependencies."
    )
    budget: BudgetSpec | None = Field(None, description="Per-run spending limits.")
    schedule: ScheduleSpec | None = Field(None, description="Schedule used by `codexflow deploy`.")

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        populate_by_name=True,
        title="codexflow swarm spec (codexflow/v1)",
    )

    def model_for(self, agent: str) -> str:
        """The model string an agent calls."""
        return self.agents[agent].model or self.defaults.model


# Tools every agent may be given by name; `codexflow/tools` registers one implementation for
# each (a test checks the two lists agree). Kept here so `validate` need not import the tools.
BUILTIN_TOOLS = (
    "read_file",
    "write_file",
    "edit_file",
    "list_files",
    "grep",
    "git_status",
    "git_diff",
    "git_commit",
    "memory_store",
    "memory_get",
    "memory_search",
    "memory_note",
)
