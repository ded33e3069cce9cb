"""Shared memory at size: embedding throughput, key lookups and vector search at 100,000 entries.

    python bench/memory_bench.py [--entries 100000] [--texts 512] [--chroma-texts 64]

1. Embedding: codexflow's MiniLM (each batch padded to its longest text) beside Chroma's
   built-in ONNXMiniLM_L6_V2 (every text padded to 256 tokens), both running the same model
   file, on the same texts: texts per second and the largest difference between the vectors.
2. Key lookup: `Memory.get` p50/p99 over 2,000 random keys of a namespace of 100,000 entries.
3. Vector search: top-10 over 100,000 vectors, the Chroma query alone and `Memory.search` end to
   end (embedding the question, querying Chroma, reading the entries), p50/p99 over 200 queries.

The entries and vectors are bulk-loaded (the bench measures reads, not the write path); vectors
are random unit vectors of MiniLM's 384 dimensions. Takes a few minutes on 2 cores; not a test.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from codexflow.memory import Memory, MemoryConfig
from codexflow.memory.embeddings import MiniLMEmbedder, minilm_files
from codexflow.memory.tables import EntryRow

WORDS = [
    "agent",
    "plan",
    "test",
    "merge",
    "review",
    "deploy",
    "schema",
    "memory",
    "vector",
    "search",
    "python",
    "module",
    "error",
    "release",
    "branch",
    "commit",
    "build",
    "cache",
    "token",
    "budget",
    "graph",
    "task",
    "worker",
    "queue",
    "server",
    "client",
    "database",
    "index",
    "lookup",
    "retry",
    "timeout",
    "model",
    "prompt",
    "answer",
    "tool",
    "shell",
    "file",
    "write",
    "read",
]


def sentences(count: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 24))).capitalize() + "."
        for _ in range(count)
    ]


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def chroma_builtin(directory: Path) -> object:
    """Chroma's own MiniLM function, pointed at the model file codexflow uses (no download)."""
    from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2

    model, tokenizer = minilm_files()
    onnx = directory / "onnx"
    onnx.mkdir(parents=True)
    shutil.copy(model, onnx / "model.onnx")
    shutil.copy(tokenizer, onnx / "tokenizer.json")
    for name in ("config.json", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt"):
        (onnx / name).write_text("{}")  # present so it does not download; never read
    function = ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"])
    function.DOWNLOAD_PATH = directory  # type: ignore[misc]
    return function


def bench_embeddings(texts: int, chroma_texts: int, scratch: Path) -> None:
    corpus = sentences(texts)
    ours = MiniLMEmbedder()
    ours.embed(corpus[:8])  # load the model outside the timing
    started = time.perf_counter()
    vectors = ours.embed(corpus)
    ours_rate = len(corpus) / (time.perf_counter() - started)

    builtin = chroma_builtin(scratch / "chroma-model")
    builtin(corpus[:2])  # type: ignore[operator]
    started = time.perf_counter()
    theirs = builtin(corpus[:chroma_texts])  # type: ignore[operator]
    theirs_rate = chroma_texts / (time.perf_counter() - started)
    difference = max(
        abs(float(a) - float(b))
        for mine, other in zip(vectors[:chroma_texts], theirs, strict=True)
        for a, b in zip(mine, other, strict=True)
    )
    print(
        f"embedding: codexflow MiniLM {ours_rate:,.0f} texts/s ({texts} texts), "
        f"Chroma built-in {theirs_rate:,.1f} texts/s ({chroma_texts} texts): "
        f"{ours_rate / theirs_rate:,.0f}x; largest vector difference {difference:.1e}",
        flush=True,
    )


def load(memory: Memory, entries: int) -> list[str]:
    keys = [f"note-{index:06d}" for index in range(entries)]
    now = time.time()
    rows = [
        {
            "namespace": memory.namespace,
            "key": key,
            "value": f'"{sentence}"',
            "tags": [],
            "created_at": now,
            "updated_at": now,
        }
        for key, sentence in zip(keys, sentences(entries, seed=5), strict=True)
    ]
    started = time.perf_counter()
    with memory.engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            connection.execute(insert(EntryRow), rows[start : start + 10_000])
    print(f"loaded {entries:,} entries in {time.perf_counter() - started:.1f} s", flush=True)

    import numpy as np

    generator = np.random.default_rng(11)
    started = time.perf_counter()
    for start in range(0, entries, 5_000):
        block = generator.standard_normal((min(5_000, entries - start), 384)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        chunk = keys[start : start + len(block)]
        memory.vectors.upsert(
            memory.namespace,
            memory.embedder.id,
            chunk,
            block.tolist(),
            [{"namespace": memory.namespace, "key": key} for key in chunk],
        )
    print(f"loaded {entries:,} vectors in {time.perf_counter() - started:.1f} s", flush=True)
    return keys


def bench_lookups(memory: Memory, keys: list[str], count: int = 2_000) -> None:
    rng = random.Random(1)
    samples = []
    for key in rng.sample(keys, min(count, len(keys))):
        started = time.perf_counter()
        assert memory.get(key) is not None
        samples.append((time.perf_counter() - started) * 1000)
    print(
        f"key lookup over {len(keys):,} entries: p50 {statistics.median(samples):.3f} ms, "
        f"p99 {percentile(samples, 0.99):.3f} ms",
        flush=True,
    )


def bench_search(memory: Memory, entries: int, count: int = 200) -> None:
    import numpy as np

    generator = np.random.default_rng(12)
    raw = []
    for _ in range(count):
        vector = generator.standard_normal(384).astype(np.float32)
        vector /= np.linalg.norm(vector)
        started = time.perf_counter()
        hits = memory.vectors.query(memory.namespace, memory.embedder.id, vector.tolist(), 10)
        raw.append((time.perf_counter() - started) * 1000)
        assert len(hits) == 10
    questions = sentences(count, seed=9)
    end_to_end = []
    for question in questions:
        started = time.perf_counter()
        memory.search(question, limit=10)
        end_to_end.append((time.perf_counter() - started) * 1000)
    print(
        f"top-10 search over {entries:,} vectors: Chroma query p50 {statistics.median(raw):.2f} ms "
        f"(p99 {percentile(raw, 0.99):.2f}); Memory.search with MiniLM p50 "
        f"{statistics.median(end_to_end):.2f} ms (p99 {percentile(end_to_end, 0.99):.2f})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--chroma-texts", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        bench_embeddings(args.texts, args.chroma_texts, Path(scratch))
        memory = Memory(MemoryConfig.under(Path(scratch) / "state", namespace="bench"))
        keys = load(memory, args.entries)
        bench_lookups(memory, keys)
        bench_search(memory, args.entries)
        memory.close()


if __name__ == "__main__":
    main()
