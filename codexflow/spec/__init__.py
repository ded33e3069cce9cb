"""The spec format `codexflow/v1`: models, loading with positions, checks, JSON Schema."""

from codexflow.spec.load import load_spec, load_spec_source, load_spec_text
from codexflow.spec.models import Spec

__all__ = ["Spec", "load_spec", "load_spec_source", "load_spec_text"]
