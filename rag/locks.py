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
from dataclasses import dataclass
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


@dataclass
class Writing:
    """What a writer says of the index it leaves: the digest of its papers, when it knows it (rag.snapshot), or
    that it wrote nothing, which leaves the index's version as it was (readers keep their snapshot)."""

    digest: str = ""
    wrote: bool = True


@contextmanager
def writer(settings: Settings) -> Iterator[Writing]:
    """Hold the index for writing: waits up to RAG_LOCK_WAIT seconds for another writer, then fails in one line.

    The index's version changes when the writer ends, naming the digest it set. NOTE: not when it starts: readers
    reopen the index when its version changes, and one reopening in this process would close the Chroma client the
    writer is writing with (the app ingests uploads beside its readers). A write cut short by kill -9 leaves the
    old version, whose snapshot lacks the papers written so far; the next ingest finishes them and names the new one.
    """
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
    writing = Writing()
    try:
        note.write_text(holder(), encoding="utf-8")
        if settings.chroma_url:
            with _lease(settings, deadline):
                yield writing
                if writing.wrote:
                    _bump(settings, writing.digest)
        else:
            yield writing
    finally:
        if not settings.chroma_url and writing.wrote:
            _bump(settings, writing.digest)
        note.unlink(missing_ok=True)
        lock.release()


def version(settings: Settings) -> str:
    """A token that changes with every write to the index: a process that opened the index before another one
    wrote it must reopen it (embedded Chroma keeps what it read in memory). "<digest>.<nonce>" after a writer that
    set a digest, a bare nonce otherwise. On a Chroma server the token is kept there, so every client sees it."""
    if settings.chroma_url:
        from rag.store import leases

        try:
            record = _current(leases(settings, _LEASES), _version_key(settings))
        except Exception as exc:  # NOTE: the server is down: the next read says so in one line
            log.info("could not read the index version (%s)", type(exc).__name__)
            return ""
        return str(record.get("token", "")) if record else ""
    try:
        return _read(_version_path(settings))
    except OSError:  # a read-only home: nobody writes there
        return ""


def first_version(settings: Settings) -> str:
    """Give an index that has no version yet (one written before versions were kept, or served by a Chroma server
    from files written without one) its first, and return it; "" when it has one already. A reader may call this:
    a writer at work meanwhile names a new version when it finishes, as it does for any reader that read the index
    while it wrote. NOTE: on a server there is no create-if-absent; a writer's version, written when it finishes,
    still replaces this one."""
    token = uuid.uuid4().hex
    if settings.chroma_url:
        from rag.store import leases

        try:
            table = leases(settings, _LEASES)
            if _current(table, _version_key(settings)) is not None:
                return ""
            table.upsert(ids=[_version_key(settings)], embeddings=[[0.0]], metadatas=[{"token": token}])
        except Exception as exc:  # NOTE: the server is down: the next read says so in one line
            log.info("could not record the index version (%s)", type(exc).__name__)
            return ""
        return token
    try:
        with _version_path(settings).open("x", encoding="utf-8") as f:  # NOTE: fails when it exists
            f.write(token)
    except OSError:  # it exists, or the home is read-only
        return ""
    return token


def _bump(settings: Settings, digest: str = "") -> None:
    token = f"{digest}.{uuid.uuid4().hex}" if digest else uuid.uuid4().hex
    if settings.chroma_url:
        from rag.store import leases

        try:
            table = leases(settings, _LEASES)
            table.upsert(ids=[_version_key(settings)], embeddings=[[0.0]], metadatas=[{"token": token}])
        except Exception as exc:  # NOTE: clients then reopen on their next version change
            log.warning("could not record the index version on the server (%s)", type(exc).__name__)
        return
    path = _version_path(settings)
    spare = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        spare.write_text(token, encoding="utf-8")
        spare.replace(path)
    except OSError as exc:
        log.info("could not record the index version (%s)", exc)


def _version_path(settings: Settings) -> Path:
    return _lock_path(settings, f"version-{hashlib.sha256(settings.index_name.encode()).hexdigest()[:8]}")


def _version_key(settings: Settings) -> str:
    return f"{settings.index_name}#version"


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
