"""Shared memory that lasts: SQLModel tables and store, Chroma vectors, embeddings, run history.

The only package that imports sqlmodel and chromadb (an import-linter contract says so).
"""

from __future__ import annotations

from codexflow.memory.config import MemoryConfig, config_from_spec
from codexflow.memory.embeddings import EmbeddingUnavailable, make_embedder
from codexflow.memory.store import Entry, Hit, Memory, MemoryRefused

__all__ = [
    "EmbeddingUnavailable",
    "Entry",
    "Hit",
    "Memory",
    "MemoryConfig",
    "MemoryRefused",
    "config_from_spec",
    "make_embedder",
]
