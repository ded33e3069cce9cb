"""Spec -> Plan: steps, topology expansion, agent assignment, cycle check, content hashes."""

from codexflow.compiler.compile import compile_spec
from codexflow.compiler.plan import Assignment, Plan, Step

__all__ = ["Assignment", "Plan", "Step", "compile_spec"]
