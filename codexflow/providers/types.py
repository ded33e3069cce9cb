"""The provider layer's value types: how an agent reaches its model, what it asks, what it gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["live", "record", "replay"]


@dataclass(frozen=True)
class ModelRoute:
    """Everything that decides how one agent reaches its model(s)."""

    model: str  # a litellm model string, e.g. "openai/gpt-4o-mini" or "scripted/planner"
    fallbacks: tuple[str, ...] = ()
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 600.0  # per call, seconds
    retries: int = 3  # transient failures only; attempts = retries + 1 per model
    retry_delay: float = 2.0  # base of the exponential backoff (full jitter); Retry-After wins
    api_base: str | None = None  # e.g. http://127.0.0.1:PORT/v1 for a local OpenAI-protocol server
    api_key_env: str | None = None  # the NAME of the env var holding the key, never the key

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        if self.retry_delay < 0:
            raise ValueError(f"retry_delay must be >= 0, got {self.retry_delay}")

    @property
    def models(self) -> tuple[str, ...]:
        """The primary model, then the fallbacks, in the order they are tried."""
        return (self.model, *self.fallbacks)


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request: OpenAI-style messages, tool schemas, an optional output schema."""

    messages: Sequence[dict[str, Any]]
    tools: Sequence[dict[str, Any]] = ()
    # A JSON Schema for structured output (sent as OpenAI's {"type": "json_schema", ...}), or an
    # OpenAI-shaped response_format ({"type": "json_object"}, ...) passed as it is.
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked to call; `arguments` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens one call consumed, as the provider reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResponse:
    """The answer of one `Provider.complete` call, with what it cost and how many requests it took."""

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    model: str = ""  # which model of the route answered (the route's string, not the vendor's)
    usage: Usage = Usage()
    cost_usd: float = 0.0
    cost_known: bool = True  # False when the price table does not know the model (cost_usd is 0)
    attempts: int = 1  # requests sent for this call, over every model tried
