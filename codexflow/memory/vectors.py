"""Vectors in Chroma: a local directory (writes serialised by a file lock) or a Chroma server.

One collection per namespace and vector space (`refactor.minilm`); each vector's id is its
entry's key and its metadata names the entry. Chroma is not safe for several processes writing
one directory, so local writes hold an exclusive `flock` on a file beside it: the kernel
releases it when a holder dies, so a killed writer never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class VectorHit:
    key: str
    score: float  # cosine similarity


def collection_name(namespace: str, space: str) -> str:
    return f"{namespace}.{space}"


class VectorStore:
    """Upsert, delete and query vectors of one Chroma location."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.remote = location.startswith(("http://", "https://"))
        self._client: Any = None
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._lock_file = None if self.remote else Path(location) / ".codexflow-write.lock"

    def _connect(self) -> Any:
        if self._client is None:
            import chromadb
            from chromadb.config import Settings

            settings = Settings(anonymized_telemetry=False)  # nothing leaves the machine
            if self.remote:
                url = urlparse(self.location)
                self._client = chromadb.HttpClient(
                    host=url.hostname or "127.0.0.1",
                    port=url.port or (443 if url.scheme == "https" else 8000),
                    ssl=url.scheme == "https",
                    settings=settings,
                )
            else:
                Path(self.location).mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=self.location, settings=settings)
        return self._client

    def _collection(self, name: str, *, create: bool = True) -> Any:
        """The collection, created only by writers (they hold the lock); None for a reader
        when nothing was written yet."""
        if name not in self._collections:
            client = self._connect()
            if create:
                collection = client.get_or_create_collection(
                    name, embedding_function=None, metadata={"hnsw:space": "cosine"}
                )
            else:
                from chromadb.errors import NotFoundError

                try:
                    collection = client.get_collection(name, embedding_function=None)
                except NotFoundError:
                    return None
            self._collections[name] = collection
        return self._collections[name]

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self._lock:
            if self._lock_file is None:
                yield
                return
            self._lock_file.parent.mkdir(parents=True, exist_ok=True)
            # A fresh descriptor per write: flock excludes other descriptors, so threads of
            # this process are serialised too, not only other processes.
            fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def upsert(
        self,
        namespace: str,
        space: str,
        keys: list[str],
        vectors: list[list[float]],
        metadatas: list[dict[str, Any]],
    ) -> None:
        if not keys:
            return
        with self._writing():
            self._collection(collection_name(namespace, space)).upsert(
                ids=keys, embeddings=vectors, metadatas=metadatas
            )

    def delete(self, namespace: str, space: str, keys: list[str]) -> None:
        if not keys:
            return
        with self._writing():
            self._collection(collection_name(namespace, space)).delete(ids=keys)

    def query(self, namespace: str, space: str, vector: list[float], limit: int) -> list[VectorHit]:
        with self._lock:
            collection = self._collection(collection_name(namespace, space), create=False)
            if collection is None:
                return []
            found = collection.query(
                query_embeddings=[vector], n_results=max(1, limit), include=["distances"]
            )
        ids = found["ids"][0] if found["ids"] else []
        distances = found["distances"][0] if found.get("distances") else [1.0] * len(ids)
        return [
            VectorHit(key, round(1.0 - float(d), 4)) for key, d in zip(ids, distances, strict=True)
        ]

    def keys(self, namespace: str, space: str) -> list[str]:
        with self._lock:
            collection = self._collection(collection_name(namespace, space), create=False)
            return list(collection.get(include=[])["ids"]) if collection is not None else []
