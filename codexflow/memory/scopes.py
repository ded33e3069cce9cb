"""Which agents may read and write which namespaces (`memory.scopes`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["read", "write"]
ANY = "*"


@dataclass(frozen=True)
class Scopes:
    """An agent not listed reads and writes the spec's namespace only; a listed agent exactly
    the namespaces listed (`*` for every one). No agent (a person at the CLI) may do anything."""

    namespace: str
    rules: dict[str, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)

    def allows(self, agent: str | None, namespace: str, mode: Mode) -> bool:
        if agent is None:
            return True
        rule = self.rules.get(agent)
        if rule is None:
            return namespace == self.namespace
        allowed = rule[0] if mode == "read" else rule[1]
        return ANY in allowed or namespace in allowed

    def readable(self, agent: str | None) -> str:
        """The namespaces an agent may read, for messages."""
        if agent is None or agent not in self.rules:
            return self.namespace
        return ", ".join(sorted(self.rules[agent][0])) or "none"

    def writable(self, agent: str | None) -> str:
        if agent is None or agent not in self.rules:
            return self.namespace
        return ", ".join(sorted(self.rules[agent][1])) or "none"
