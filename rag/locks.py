"""One writer per index: a file lock on this machine, and a lease in Chroma for writers on other machines.

Embedded Chroma is one SQLite file and one vector segment per collection, and two processes writing them at once
leave chunks without embeddings. So every write (an ingest, a repair) holds `writer(settings)`. Readers take no
lock. Nothing holds a lock across a call that takes it again: the first ask on an empty index takes the writer
lock once, re-checks that the index is still empty, and ingests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from rag.config import Settings, shown_url
from rag.errors import RagError

log = logging.getLogger(__name__)

# A lease lives LEASE_SECONDS unless renewed; its holder renews it every LEASE_SECONDS / 4. A writer killed with
# kill -9 therefore blocks others for at most LEASE_SECONDS.
LEASE_SECONDS = 120.0
_POLL = 0.5
_LEASES = "paper_rag_writers"


class BusyError(RagError):
    """Another writer holds the index for longer than we were willing to wait."""


def _lock_path(settings: Settings, name: str) -> Path:
    where = settings.chroma_url or str(settings.home.resolve())
    folder = settings.home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{hashlib.sha256(where.encode()).hexdigest()[:12]}.lock"


def holder() -> str:
    """Who we are, as shown to a writer that waits for us."""
    return f"{socket.gethostname()} pid {os.getpid()}"


@contextmanager
def opening(settings: Settings) -> Iterator[None]:
    """Held while a process opens the index: Chroma's first start creates its tables, and two at once collide."""
    try:
        lock = FileLock(_lock_path(settings, "open"), timeout=max(settings.lock_wait, 1.0))
        lock.acquire()
    except Timeout:
        raise BusyError(f"another process is opening the index under {settings.home}; try again") from None
    except OSError as exc:  # a read-only home: nobody can create tables there either
        log.info("no open lock (%s)", exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()


@contextmanager
def writer(settings: Settings) -> Iterator[None]:
    """Hold the index for writing: waits up to RAG_LOCK_WAIT seconds for another writer, then fails in one line."""
    path = _lock_path(settings, "write")
    lock = FileLock(path, timeout=0)
    note = path.with_suffix(".holder")
    started = time.monotonic()
    deadline = started + settings.lock_wait
    told = False
    while True:
        try:
            lock.acquire()
            break
        except Timeout:
            other = _read(note)
            now = time.monotonic()
            if not told and now >= started + 1.0 and now < deadline:  # NOTE: a short wait needs no word
                log.warning("waiting for another ingest (%s) to finish writing the index", other or "another process")
                told = True
            if now >= deadline:
                raise BusyError(
                    f"the index is being written by {other or 'another process'}; "
                    "try again when that ingest finishes (or raise RAG_LOCK_WAIT)"
                ) from None
            time.sleep(_POLL)
    try:
        note.write_text(holder(), encoding="utf-8")
        if settings.chroma_url:
            with _lease(settings, deadline):
                yield
        else:
            yield
    finally:
        _bump(settings)
        note.unlink(missing_ok=True)
        lock.release()


def version(settings: Settings) -> str:
    """A token that changes with every write to the index from this machine: a process that opened the index
    before another one wrote it must reopen it (embedded Chroma keeps what it read in memory)."""
    try:
        return _read(_lock_path(settings, "version"))
    except OSError:  # a read-only home: nobody writes there
        return ""


def _bump(settings: Settings) -> None:
    path = _lock_path(settings, "version")
    spare = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        spare.write_text(uuid.uuid4().hex, encoding="utf-8")
        spare.replace(path)
    except OSError as exc:
        log.info("could not record the index version (%s)", exc)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


@contextmanager
def _lease(settings: Settings, deadline: float) -> Iterator[None]:
    """A renewed lease record in the Chroma server, for writers on other machines.

    Chroma has no compare-and-swap, so a claim is written, read back after a pause, and kept only if it is still
    ours: of two writers that claim at once, the later write wins and the other backs off and waits.
    """
    from rag.store import leases

    table = leases(settings, _LEASES)
    key = settings.index_name
    started = time.monotonic()
    token = uuid.uuid4().hex
    told = False
    while True:
        current = _current(table, key)
        if current is None or current["token"] == token or float(current["expires"]) < time.time():
            table.upsert(ids=[key], embeddings=[[0.0]], metadatas=[_claim(token)])
            time.sleep(_POLL)
            current = _current(table, key)
            if current is not None and current["token"] == token:
                break
            continue
        now = time.monotonic()
        if not told and now >= started + 1.0 and now < deadline:  # NOTE: a short wait needs no word
            log.warning("waiting for another ingest (%s) to finish writing the index", current["holder"])
            told = True
        if now >= deadline:
            raise BusyError(
                f"the index {key} on {shown_url(settings.chroma_url)} is being written by {current['holder']}; "
                "try again when that ingest finishes (or raise RAG_LOCK_WAIT)"
            )
        time.sleep(_POLL)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_SECONDS / 4):
            try:
                table.upsert(ids=[key], embeddings=[[0.0]], metadatas=[_claim(token)])
            except Exception as exc:  # the server is down: the write itself will fail and say so
                log.warning("could not renew the writer lease (%s)", type(exc).__name__)

    thread = threading.Thread(target=renew, name="rag-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        try:
            if (current := _current(table, key)) is not None and current["token"] == token:
                table.delete(ids=[key])
        except Exception as exc:  # it expires by itself
            log.warning("could not release the writer lease (%s)", type(exc).__name__)


def _claim(token: str) -> dict[str, Any]:
    return {"token": token, "holder": holder(), "expires": time.time() + LEASE_SECONDS}


def _current(table: Any, key: str) -> dict[str, Any] | None:
    got = table.get(ids=[key], include=["metadatas"])
    return dict(got["metadatas"][0]) if got["ids"] else None
