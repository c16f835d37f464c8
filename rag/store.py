"""The Chroma store: the only module that talks to chromadb (embedded or a server)."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from rag.config import Settings, shown_url
from rag.errors import RagError
from rag.locks import opening
from rag.models import Paper

log = logging.getLogger(__name__)

_PAGE = 2000
_WRITE_PAGE = 1024


class StoreError(RagError):
    """The Chroma store cannot be opened or written; the message says what and where."""


@dataclass
class Chunk:
    """One indexed sentence (or a token-capped piece of a long one) of a paper."""

    chunk_id: str
    paper_id: str
    text: str
    position: int
    embedding: np.ndarray | None = None


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()
_read_only: set[str] = set()  # indexes read from a copy because their folder cannot be written


def _writable(path: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _read_only_copy(path: Path) -> Path:
    """A read-only index (a read-only mount): Chroma cannot open it in place, so queries read a copy in the temp
    folder, made once per version of the index."""
    stamp = f"{path.resolve()}|{(path / 'chroma.sqlite3').stat().st_mtime_ns}"
    copy = Path(tempfile.gettempdir()) / f"paper-rag-readonly-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    if not copy.exists():
        spare = copy.with_suffix(f".{os.getpid()}.tmp")
        try:
            shutil.copytree(path, spare)
            spare.replace(copy)
        except OSError as exc:
            shutil.rmtree(spare, ignore_errors=True)
            raise StoreError(f"index folder {path} is read-only and cannot be copied to read it ({exc})") from None
    log.info("index folder %s is read-only: reading a copy; ingest needs a writable RAG_HOME", path)
    return copy


def is_read_only(settings: Settings) -> bool:
    """Whether this process reads the index from a copy (its folder cannot be written)."""
    return (settings.chroma_url or str(settings.home)) in _read_only


def _client(settings: Settings) -> Any:
    import chromadb

    key = settings.chroma_url or str(settings.home)
    with _clients_lock:
        if key in _clients:
            return _clients[key]
        if settings.chroma_url:
            url = urlparse(settings.chroma_url)
            try:
                client = chromadb.HttpClient(
                    host=url.hostname or "127.0.0.1",
                    port=url.port or 8000,
                    ssl=url.scheme == "https",
                    settings=_chroma_settings(),
                )
                client.heartbeat()
            except Exception as exc:
                raise StoreError(
                    f"Chroma server at {shown_url(settings.chroma_url)} is unreachable ({type(exc).__name__}); "
                    "start it with `chroma run` or unset RAG_CHROMA_URL"
                ) from None
        else:
            path = settings.home / "chroma"
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create index folder {path} ({exc.strerror}); set RAG_HOME") from None
            if not _writable(path):
                if not (path / "chroma.sqlite3").is_file():
                    raise StoreError(f"index folder {path} is read-only; set RAG_HOME to a writable folder")
                path = _read_only_copy(path)
                _read_only.add(key)
            try:
                with opening(settings):
                    client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
            except RagError:
                raise
            except Exception as exc:
                raise StoreError(f"cannot open the index at {path} ({exc}); set RAG_HOME") from None
        _clients[key] = client
        return client


_T = TypeVar("_T")


def _reading(method: Callable[..., _T]) -> Callable[..., _T]:
    """A read of the index that fails in one line: a server that went away, damaged files."""

    @functools.wraps(method)
    def read(self: Store, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except RagError:
            raise
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0][:200]
            hint = "is the server still running?" if self.settings.chroma_url else "try `rag ingest --check`"
            raise StoreError(f"cannot read the index at {self.where} ({type(exc).__name__}: {first}); {hint}") from None

    return read


def reopen(settings: Settings) -> None:
    """Forget this process's Chroma client for the index, so the next Store reads what another process wrote."""
    key = settings.chroma_url or str(settings.home)
    with _clients_lock:
        client = _clients.pop(key, None)
    if client is None or settings.chroma_url:
        return
    from chromadb.api.shared_system_client import SharedSystemClient

    # NOTE: forgotten, not stopped: other threads of this process may still be reading with it (several asks that
    # saw the same new version at once), and a stopped system fails their reads; it is freed with its last Store
    SharedSystemClient._identifier_to_system.pop(str(settings.home / "chroma"), None)
    SharedSystemClient._identifier_to_refcount.pop(str(settings.home / "chroma"), None)


class Store:
    """Two Chroma collections per index: sentences (chunks) and papers (one record each).

    A paper record is written only after all of its chunks, so a record marks a complete paper;
    chunks without a record are debris of an interrupted ingest and are replaced on the next one.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.where = shown_url(settings.chroma_url) or str(settings.home / "chroma")
        client = _client(settings)
        meta = {"hnsw:space": "cosine"}
        try:
            with opening(settings):
                self.chunks = client.get_or_create_collection(settings.index_name, metadata=meta)
                self.papers = client.get_or_create_collection(f"{settings.index_name}_papers", metadata=meta)
        except RagError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open index {settings.index_name} at {self.where} ({exc})") from None

    def vector_store(self) -> Any:
        """The chunk collection as a llama-index `ChromaVectorStore`, for llama-index retrievers and query engines."""
        from llama_index.vector_stores.chroma import ChromaVectorStore

        return ChromaVectorStore(chroma_collection=self.chunks)

    # --- papers ---------------------------------------------------------------------------

    @_reading
    def paper_hashes(self) -> dict[str, tuple[str, str]]:
        """paper_id → (content hash, source) of every complete paper."""
        out: dict[str, tuple[str, str]] = {}
        for ids, metas, _, _ in self._scan(self.papers, include=["metadatas"]):
            for pid, meta in zip(ids, metas, strict=True):
                out[pid] = (str(meta.get("hash", "")), str(meta.get("source", "")))
        return out

    def put_papers(self, papers: Sequence[Paper], embeddings: np.ndarray, chunk_counts: Sequence[int]) -> None:
        """Write paper records, each with its number of chunks. NOTE: the abstract is metadata, not a Chroma
        document: nothing searches the records' text, and a document's full-text indexing tripled the cost of the
        write (BENCHMARKS.md)."""
        self._write(
            self.papers.upsert,
            ids=[p.paper_id for p in papers],
            embeddings=embeddings,
            metadatas=[_paper_meta(p) | {"chunks": n} for p, n in zip(papers, chunk_counts, strict=True)],
        )

    def delete_papers(self, paper_ids: Iterable[str]) -> None:
        ids = list(paper_ids)
        for start in range(0, len(ids), _PAGE):
            page = ids[start : start + _PAGE]
            self._write(self.chunks.delete, where={"paper_id": {"$in": page}})
            self._write(self.papers.delete, ids=page)

    @_reading
    def all_papers(self, with_embeddings: bool = False) -> tuple[list[Paper], np.ndarray | None]:
        """Every complete paper, and optionally its paper-level embedding."""
        include = ["metadatas"] + (["embeddings"] if with_embeddings else [])
        papers: list[Paper] = []
        vectors: list[Any] = []
        for ids, metas, _, embs in self._scan(self.papers, include=include):
            papers += [_paper_from(pid, m) for pid, m in zip(ids, metas, strict=True)]
            if with_embeddings and embs is not None:
                vectors.extend(embs)
        matrix = np.asarray(vectors, dtype=np.float32) if with_embeddings else None
        return papers, matrix

    @_reading
    def get_papers(self, paper_ids: Sequence[str]) -> list[Paper]:
        """The records of the given papers (those indexed), fetched by id."""
        if not paper_ids:
            return []
        records = self.papers.get(ids=list(paper_ids), include=["metadatas"])
        return [_paper_from(pid, m) for pid, m in zip(records["ids"], records["metadatas"] or [], strict=True)]

    @_reading
    def papers_with_vectors(self, paper_ids: Sequence[str]) -> tuple[list[Paper], np.ndarray]:
        """The records of the given papers with their paper-level embeddings, fetched by id in pages."""
        papers: list[Paper] = []
        vectors: list[Any] = []
        for start in range(0, len(paper_ids), _PAGE):
            got = self.papers.get(ids=list(paper_ids[start : start + _PAGE]), include=["metadatas", "embeddings"])
            papers += [_paper_from(pid, m) for pid, m in zip(got["ids"], got["metadatas"] or [], strict=True)]
            vectors.extend(got["embeddings"] if got["embeddings"] is not None else [])
        return papers, np.asarray(vectors, dtype=np.float32)

    @_reading
    def count_papers(self) -> int:
        return int(self.papers.count())

    @_reading
    def count_chunks(self) -> int:
        return int(self.chunks.count())

    @_reading
    def query_papers(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """(paper_id, cosine similarity) of the k nearest papers; k must not exceed the paper count."""
        if k <= 0:
            return []
        res = self.papers.query(query_embeddings=[vector.tolist()], n_results=k, include=["distances"])
        return [(pid, 1.0 - float(d)) for pid, d in zip(res["ids"][0], res["distances"][0], strict=True)]

    # --- chunks ---------------------------------------------------------------------------

    def put_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Add chunks with their embeddings. Metadata is only what queries filter on.

        NOTE: written straight to Chroma rather than through llama-index's `ChromaVectorStore.add`, whose node
        JSON made the writes a third slower (BENCHMARKS.md); `ChromaVectorStore` still reads the collection.
        """
        # NOTE: in pages: Chroma's `add` holds the GIL while it runs, and other threads (a UI) must not stall long.
        for start in range(0, len(chunks), _WRITE_PAGE):
            page = chunks[start : start + _WRITE_PAGE]
            self._write(
                self.chunks.add,
                ids=[c.chunk_id for c in page],
                embeddings=np.stack([c.embedding for c in page if c.embedding is not None]),
                documents=[c.text for c in page],
                metadatas=[{"paper_id": c.paper_id, "position": c.position} for c in page],
            )

    @_reading
    def query_chunks(self, vector: np.ndarray, k: int) -> list[tuple[str, str, float]]:
        """(paper_id, chunk id, cosine similarity) of the k nearest chunks; k must not exceed the chunk count."""
        if k <= 0:
            return []
        # NOTE: ids carry the paper id; fetching llama-index's metadata would cost ten times the search.
        res = self.chunks.query(query_embeddings=[vector.tolist()], n_results=k, include=["distances"])
        return [
            (chunk_paper_id(cid), cid, 1.0 - float(d))
            for cid, d in zip(res["ids"][0], res["distances"][0], strict=True)
        ]

    @_reading
    def chunk_counts(self, paper_ids: Sequence[str]) -> dict[str, int]:
        """How many chunks each paper's record says it has (-1 where the record predates the count)."""
        records = self.papers.get(ids=list(paper_ids), include=["metadatas"])
        return {
            pid: int(meta["chunks"]) if isinstance(meta.get("chunks"), int) else -1
            for pid, meta in zip(records["ids"], records["metadatas"] or [], strict=True)
        }

    @_reading
    def chunk_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """The text of the given chunks."""
        if not chunk_ids:
            return {}
        res = self.chunks.get(ids=list(chunk_ids), include=["documents"])
        return {cid: str(doc) for cid, doc in zip(res["ids"], res["documents"] or [], strict=True)}

    @_reading
    def chunks_of(self, paper_ids: Sequence[str]) -> list[Chunk]:
        """All chunks of the given papers with embeddings, in abstract order.

        NOTE: fetched by id, from each paper record's content hash and chunk count. A `where` on the papers' ids
        scans every chunk's metadata: 150 ms an answer at 100,000 papers, against a few ms by id. Records written
        before the count was kept fall back to the scan.
        """
        if not paper_ids:
            return []
        records = self.papers.get(ids=list(paper_ids), include=["metadatas"])
        ids: list[str] = []
        uncounted: list[str] = []
        for pid, meta in zip(records["ids"], records["metadatas"] or [], strict=True):
            if isinstance(meta.get("chunks"), int):
                ids += [_chunk_id(pid, str(meta["hash"]), i) for i in range(int(meta["chunks"]))]
            else:
                uncounted.append(pid)
        include = ["metadatas", "documents", "embeddings"]
        results = [self.chunks.get(ids=ids, include=include)] if ids else []
        if uncounted:
            results.append(self.chunks.get(where={"paper_id": {"$in": uncounted}}, include=include))
        chunks = [
            Chunk(cid, str(m["paper_id"]), str(doc), int(m.get("position", 0)), np.asarray(e, dtype=np.float32))
            for res in results
            for cid, m, doc, e in zip(res["ids"], res["metadatas"], res["documents"], res["embeddings"], strict=True)
        ]
        return sorted(chunks, key=lambda c: (c.paper_id, c.position))

    # --- repair ---------------------------------------------------------------------------

    def damaged_vectors(self) -> list[Path]:
        """The HNSW folders of a local index that Chroma cannot load (files damaged by a bad disk or a cut copy)."""
        if self.settings.chroma_url:
            return []
        damaged = []
        for collection in (self.chunks, self.papers):
            for segment, dimension in self._vector_segments(collection):
                try:
                    if dimension:
                        probe = [1.0] + [0.0] * (int(dimension) - 1)
                        collection.query(query_embeddings=[probe], n_results=1, include=[])
                except Exception as exc:  # NOTE: any other failure is the next read's to report, in one line
                    if "hnsw" in str(exc).lower():
                        damaged.append(self.settings.home / "chroma" / segment)
        return damaged

    def _vector_segments(self, collection: Any) -> list[tuple[str, int | None]]:
        """(segment id, dimension) of the collection's vector segments, read from Chroma's SQLite file.

        NOTE: Chroma's API does not name a collection's segments; its folders under the index folder are named so."""
        db = self.settings.home / "chroma" / "chroma.sqlite3"
        query = (
            "select s.id, c.dimension from segments s join collections c on s.collection = c.id "
            "where c.id = ? and s.scope = 'VECTOR'"
        )
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return [(str(sid), dim) for sid, dim in conn.execute(query, (str(collection.id),))]

    # --- helpers --------------------------------------------------------------------------

    def _write(self, method: Any, **kwargs: Any) -> None:
        try:
            method(**kwargs)
        except Exception as exc:
            text = str(exc).lower()
            if "readonly" in text or "read-only" in text or "permission" in text:
                raise StoreError(f"index at {self.where} is read-only; set RAG_HOME to a writable folder") from None
            raise StoreError(f"cannot write to the index at {self.where} ({type(exc).__name__}: {exc})") from None

    @staticmethod
    def _scan(collection: Any, include: list[str]) -> Iterable[tuple[list[str], list[Any], list[Any], Any]]:
        offset = 0
        while True:
            res = collection.get(include=include, limit=_PAGE, offset=offset)
            ids = res["ids"]
            if not ids:
                return
            metas = res.get("metadatas") or [{}] * len(ids)
            docs = res.get("documents") or [""] * len(ids)
            embs = res.get("embeddings")
            yield ids, metas, docs, embs
            offset += len(ids)


def earlier_papers(settings: Settings) -> tuple[str, list[Paper]] | None:
    """The papers of an index in this place that an earlier version made for the same embedding model and chunking
    (another index format, which this version does not read), the largest if there are several, with its name: what a
    first run indexes again, in place of the bundled corpus, after an upgrade. None when there is no such index."""
    ours = settings.index_name
    stem = ours.rsplit("_", 1)[0] + "_"
    try:
        names = [c if isinstance(c, str) else c.name for c in _client(settings).list_collections()]
    except Exception as exc:  # NOTE: a store that cannot list them falls back to the bundled corpus
        log.info("cannot list the indexes at %s (%s)", settings.home, exc)
        return None
    found: list[tuple[int, str, list[Paper]]] = []
    for name in names:
        if not (name.startswith(stem) and name.endswith("_papers")) or name == f"{ours}_papers":
            continue
        try:
            collection = _client(settings).get_collection(name)
            papers = [
                _paper_from(pid, meta)
                for ids, metas, _, _ in Store._scan(collection, include=["metadatas"])
                for pid, meta in zip(ids, metas, strict=True)
            ]
        except Exception as exc:
            log.info("cannot read the earlier index %s (%s)", name, exc)
            continue
        papers = [p for p in papers if p.title and p.abstract]
        if papers:
            found.append((len(papers), name.removesuffix("_papers"), papers))
    if not found:
        return None
    _, name, papers = max(found, key=lambda f: f[0])
    return name, papers


def reset_vectors(settings: Settings, folders: Sequence[Path]) -> Store:
    """Move damaged HNSW folders aside (to `<folder>.damaged`) and reopen the index: Chroma starts them empty, and
    the vectors they held must be made again (`rag.index.check` re-embeds every paper from its record)."""
    reopen(settings)
    for folder in folders:
        spare = folder.with_name(f"{folder.name}.damaged")
        shutil.rmtree(spare, ignore_errors=True)
        folder.rename(spare)
        log.warning("vector index files in %s are damaged: moved aside to %s", folder, spare)
    return Store(settings)


def leases(settings: Settings, name: str) -> Any:
    """The collection of writer leases on a Chroma server (rag.locks)."""
    try:
        return _client(settings).get_or_create_collection(name)
    except RagError:
        raise
    except Exception as exc:
        raise StoreError(
            f"cannot reach the writer leases on {shown_url(settings.chroma_url)} ({type(exc).__name__})"
        ) from None


def chunk_id(paper: Paper, position: int) -> str:
    """A chunk's id: paper id, content hash, position. Deterministic, so re-adding never duplicates."""
    return _chunk_id(paper.paper_id, paper.content_hash, position)


def _chunk_id(paper_id: str, content_hash: str, position: int) -> str:
    return f"{paper_id}#{content_hash}#{position}"


def chunk_paper_id(chunk_id: str) -> str:
    return chunk_id.rsplit("#", 2)[0]


def _paper_meta(paper: Paper) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "title": paper.title,
        "abstract": paper.abstract,
        "hash": paper.content_hash,
        "source": paper.source,
        "locator": paper.locator,
        "authors": "; ".join(paper.authors),
    }
    if paper.sentence_starts:
        meta["sentences"] = ",".join(map(str, paper.sentence_starts))
    if paper.sentence_roles:
        meta["roles"] = ";".join(",".join(f"{p:.4f}" for p in row) for row in paper.sentence_roles)
    if paper.url:
        meta["url"] = paper.url
    if paper.year:
        meta["year"] = paper.year
    return meta


def _paper_from(paper_id: str, meta: dict[str, Any]) -> Paper:
    authors = str(meta.get("authors") or "")
    return Paper(
        paper_id=paper_id,
        title=str(meta.get("title", "")),
        abstract=str(meta.get("abstract", "")),
        url=meta.get("url"),
        authors=[a for a in authors.split("; ") if a],
        year=meta.get("year"),
        source=str(meta.get("source", "")),
        locator=str(meta.get("locator", "")),
        sentence_starts=_starts(meta.get("sentences")),
        sentence_roles=_roles(meta.get("roles")),
    )


def _starts(value: object) -> list[int]:
    """Sentence starts as a record keeps them ("0,105,230"); none when missing or unreadable (they are split again)."""
    try:
        starts = [int(v) for v in str(value).split(",")] if value else []
    except ValueError:
        return []
    return starts if starts == sorted(set(starts)) and all(s >= 0 for s in starts) else []


def _roles(value: object) -> list[list[float]]:
    """Sentence role probabilities as a record keeps them ("0.1,0.7,…;0.2,…"); none when missing or unreadable (the
    role model predicts them again)."""
    try:
        rows = [[float(p) for p in row.split(",")] for row in str(value).split(";")] if value else []
    except ValueError:
        return []
    return rows if len({len(row) for row in rows}) <= 1 else []
