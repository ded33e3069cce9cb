"""The agent loop of one plan step: prompt assembly, tool calls, structured output, presets."""

from __future__ import annotations

from codexflow.agents.executor import AgentExecutor, build_route, run_agent_step
from codexflow.agents.loop import DEFAULT_RESULT_CAP, ChatProvider, Toolset, run_loop
from codexflow.agents.messages import build_messages, visible_context
from codexflow.agents.presets import PRESETS, system_prompt
from codexflow.agents.step_io import StepCall, StepExecutor, StepResult

__all__ = [
    "DEFAULT_RESULT_CAP",
    "PRESETS",
    "AgentExecutor",
    "ChatProvider",
    "StepCall",
    "StepExecutor",
    "StepResult",
    "Toolset",
    "build_messages",
    "build_route",
    "run_agent_step",
    "run_loop",
    "system_prompt",
    "visible_context",
]
