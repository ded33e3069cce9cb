"""ToolRefused: a ToolError that means "not allowed" rather than "went wrong" (audited as refused)."""

from __future__ import annotations

from codexflow.errors import ToolError


class ToolRefused(ToolError):
    """A call was refused by policy: confinement, permissions, approval or the sandbox."""
