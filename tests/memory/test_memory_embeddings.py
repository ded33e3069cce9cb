"""Embedders: offline MiniLM finds paraphrases, `hash` finds shared words, litellm goes through
the providers layer (against a real HTTP server on 127.0.0.1), and a bad choice says so."""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codexflow.memory import EmbeddingUnavailable, Memory, MemoryConfig, make_embedder
from codexflow.memory.embeddings import HashEmbedder, LitellmEmbedder, MiniLMEmbedder

# Entries and questions that mean the same thing in different words: not one word in common.
PARAPHRASES = {
    "car": ("The car would not start this morning.", "My automobile refuses to turn on."),
    "rain": ("Heavy rain is expected over the weekend.", "Saturday and Sunday look very wet."),
    "cook": ("She baked bread for dinner.", "A loaf was prepared in an oven by her tonight."),
    "money": ("Stocks fell sharply today.", "Markets dropped a lot on Wednesday."),
}


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_the_labelled_paraphrases_share_no_word() -> None:
    for text, question in PARAPHRASES.values():
        assert not words(text) & words(question)


def test_minilm_ranks_the_paraphrase_first(tmp_path: Path) -> None:
    memory = Memory(MemoryConfig.under(tmp_path, namespace="facts", embedding="minilm"))
    for key, (text, _question) in PARAPHRASES.items():
        memory.put(key, text)
    for key, (_text, question) in PARAPHRASES.items():
        hits = memory.search(question, limit=4)
        assert hits[0].key == key, (question, hits)


def test_hash_sees_no_relation_between_paraphrases() -> None:
    embedder = HashEmbedder()
    for text, question in PARAPHRASES.values():
        a, b = embedder.embed([text, question])
        assert abs(sum(x * y for x, y in zip(a, b, strict=True))) < 0.35


def test_minilm_batches_give_the_vectors_of_single_texts() -> None:
    embedder = MiniLMEmbedder()
    texts = ["short", "a much longer sentence that needs many more word pieces than the first"]
    batch = embedder.embed(texts)
    alone = [embedder.embed([text])[0] for text in texts]
    for together, single in zip(batch, alone, strict=True):
        assert max(abs(x - y) for x, y in zip(together, single, strict=True)) < 1e-5
    assert len(batch[0]) == 384


def test_an_unknown_embedding_says_what_to_choose() -> None:
    with pytest.raises(EmbeddingUnavailable, match=r"choose `minilm`.*`hash`.*litellm"):
        make_embedder("word2vec")


class EmbeddingServer(http.server.ThreadingHTTPServer):
    """Speaks OpenAI's /v1/embeddings: each text's vector is [length, vowels, 1]."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                data = [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": [float(len(t)), float(sum(c in "aeiou" for c in t)), 1.0],
                    }
                    for i, t in enumerate(texts)
                ]
                payload = json.dumps(
                    {
                        "object": "list",
                        "data": data,
                        "model": body["model"],
                        "usage": {"prompt_tokens": 3, "total_tokens": 3},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def embedding_server() -> Iterator[EmbeddingServer]:
    server = EmbeddingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_litellm_embeddings_go_through_the_providers_layer(
    embedding_server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-test")
    base = f"http://127.0.0.1:{embedding_server.server_address[1]}/v1"
    embedder = make_embedder(
        "litellm:openai/text-embedding-3-small", api_base=base, api_key_env="TEST_EMBED_KEY"
    )
    assert isinstance(embedder, LitellmEmbedder)
    vectors = embedder.embed(["abc", "aeiou!"])
    assert [body["input"] for body in embedding_server.bodies] == [["abc", "aeiou!"]]
    assert embedding_server.bodies[0]["model"] == "text-embedding-3-small"
    norm = (9 + 1 + 1) ** 0.5
    assert vectors[0] == pytest.approx([3 / norm, 1 / norm, 1 / norm])
    assert embedder.id == "litellm-openai-text-embedding-3-small"


def test_litellm_without_its_key_fails_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from codexflow.errors import ProviderError

    monkeypatch.delenv("ABSENT_EMBED_KEY", raising=False)
    embedder = make_embedder("litellm:openai/x", api_key_env="ABSENT_EMBED_KEY")
    with pytest.raises(ProviderError, match="ABSENT_EMBED_KEY is not set"):
        embedder.embed(["text"])


def test_a_failing_embedder_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codexflow.errors import ProviderError

    monkeypatch.delenv("ABSENT_EMBED_KEY", raising=False)
    config = MemoryConfig.under(
        tmp_path, namespace="n", embedding="litellm:openai/x", api_key_env="ABSENT_EMBED_KEY"
    )
    memory = Memory(config)
    with pytest.raises(ProviderError):
        memory.put("k", "never stored")
    assert memory.get("k") is None and memory.count() == 0
