"""Model calls for codexflow: routing, retries, fallbacks, breakers, cost, record/replay.

The only package of codexflow that imports litellm, and only when a call is made.

    provider = Provider(ledger=Ledger(max_usd=5))                       # live
    provider = Provider(cassette=Cassette("run.cassette.yaml"), mode="record")
    provider = Provider(cassette=Cassette.load("run.cassette.yaml"), mode="replay")
    provider = Provider(script=Script.load("demo.script.yaml"))        # for scripted/<name> models
    answer = provider.complete(ModelRoute("openai/gpt-4o-mini"), ChatRequest(messages), step="plan")

A script file (YAML or JSON) lists replies; a call takes the first unused one whose optional
`step` and `model` match it (`repeat: true` keeps a reply for every later match):

    replies:
      - {step: plan, content: {units: [a.py]}, usage: {prompt_tokens: 12, completion_tokens: 4}}
      - {step: code, tool_calls: [{name: read_file, arguments: {path: a.py}}], delay: 0.1}
      - {model: scripted/reviewer, error: {status: 429, retry_after: 1}}
      - {model: scripted/reviewer, content: LGTM, repeat: true}
"""

from __future__ import annotations

from .breaker import Breakers, CircuitBreaker
from .cassette import Cassette, Exchange, request_key
from .ledger import Ledger, Spend
from .provider import Provider
from .scripted import Script, ScriptedError, ScriptedReply
from .types import ChatRequest, ChatResponse, Mode, ModelRoute, ToolCall, Usage

__all__ = [
    "Breakers",
    "Cassette",
    "ChatRequest",
    "ChatResponse",
    "CircuitBreaker",
    "Exchange",
    "Ledger",
    "Mode",
    "ModelRoute",
    "Provider",
    "Script",
    "ScriptedError",
    "ScriptedReply",
    "Spend",
    "ToolCall",
    "Usage",
    "request_key",
]
