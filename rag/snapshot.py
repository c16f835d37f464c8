"""What retrieval reads when a process opens an index, kept on disk beside it: the papers' ids and titles, how many
papers each word is in, and the BM25 index.

Without it every process read every paper record (13.5 s at 100,000 papers) and built the lexical index (30 s)
before its first answer. A snapshot is named by the digest of the indexed papers' ids and content hashes; an ingest
writes it while it holds the index (so an unchanged re-ingest finds it made), and names the digest in the index's
version (rag.locks). A process opening the index loads the snapshot its version names, or builds it from the paper
records when none does (an index written by an older version of this tool, a repair) and keeps
it for the next process. Each is written into a temporary folder and renamed into place: a reader sees a whole
snapshot or none, and a kill -9 mid-write leaves the previous one readable. Paper records are then fetched by id, for
the hits only (rag.retrieve.Papers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.config import Settings
from rag.lexical import LexicalIndex
from rag.locks import first_version, version
from rag.models import Paper
from rag.store import Store
from rag.text import content_words

log = logging.getLogger(__name__)

_PAPERS = "papers.json"
_DEBRIS_SECONDS = 3600.0  # a temporary folder this old is a killed writer's, not one still writing


@dataclass
class Snapshot:
    ids: list[str]  # the indexed papers, in the lexical index's order
    titles: list[str]  # their titles, in the same order (hits, and the app's paper picker, need no record)
    word_papers: dict[str, int]  # stemmed content word → how many papers' title or abstract it is in
    lexical: LexicalIndex


def digest(papers: Iterable[tuple[str, str]]) -> str:
    """The name of the snapshot of these (paper id, content hash) pairs, whatever their order."""
    text = "\n".join(f"{pid}:{content}" for pid, content in sorted(papers))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build(papers: list[Paper]) -> Snapshot:
    counts: Counter[str] = Counter()
    for paper in papers:
        counts.update(content_words(f"{paper.title} {paper.abstract}"))
    return Snapshot([p.paper_id for p in papers], [p.title for p in papers], dict(counts), LexicalIndex(papers))


def ensure(settings: Settings, store: Store, name: str) -> None:
    """Make the snapshot called `name` from the paper records unless it exists (an ingest calls this)."""
    if _load(_root(settings) / name) is None:
        papers, _ = store.all_papers()
        _save(build(papers), _root(settings), name)


def open_snapshot(settings: Settings, store: Store) -> tuple[Snapshot, list[Paper] | None]:
    """The snapshot of the index as it is now, and the paper records when they had to be read to build it."""
    # NOTE: "<digest>.<nonce>" after an ingest, a bare nonce after other writes; anything else names no snapshot
    name = version(settings).split(".")[0]
    name = name if re.fullmatch(r"[0-9a-f]{8,64}", name) else ""
    if name and (found := _load(_root(settings) / name)) is not None:
        return found, None
    papers, _ = store.all_papers()
    made = build(papers)
    if name := name or first_version(settings):
        _save(made, _root(settings), name)
    return made, papers


def _root(settings: Settings) -> Path:
    where = settings.chroma_url or str(settings.home.resolve())
    return settings.home / "snapshots" / f"{settings.index_name}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"


def _load(folder: Path) -> Snapshot | None:
    if not (folder / _PAPERS).is_file():
        return None
    try:
        papers = json.loads((folder / _PAPERS).read_text(encoding="utf-8"))
        ids, titles = list(papers["ids"]), list(papers["titles"])
        if len(ids) != len(titles):
            raise ValueError("ids and titles differ in number")
        return Snapshot(ids, titles, dict(papers["word_papers"]), LexicalIndex.load(folder))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # NOTE: damaged files: built again from the records
        log.warning("the search snapshot in %s is unreadable (%s); rebuilding it", folder, type(exc).__name__)
        return None


def _save(snapshot: Snapshot, root: Path, name: str) -> None:
    """Write the snapshot as `root/name`, then delete the others (their index versions are gone)."""
    spare = root / f".{name}.{os.getpid()}.tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(spare, ignore_errors=True)
        spare.mkdir()
        snapshot.lexical.save(spare)
        papers = {"ids": snapshot.ids, "titles": snapshot.titles, "word_papers": snapshot.word_papers}
        (spare / _PAPERS).write_text(json.dumps(papers), encoding="utf-8")
        with contextlib.suppress(FileNotFoundError):  # NOTE: one that could not be read is replaced
            (root / name).rename(root / f".{name}.{os.getpid()}.old")
        spare.rename(root / name)
    except OSError as exc:  # NOTE: a read-only or full disk: this process searches from what it built
        shutil.rmtree(spare, ignore_errors=True)
        if not (root / name).is_dir():  # another process renamed its copy into place first: no loss
            log.info("could not keep the search snapshot in %s (%s)", root, exc)
        return
    for other in root.iterdir():
        with contextlib.suppress(OSError):
            debris = other.name.startswith(".") and (
                other.name.endswith(".old") or time.time() - other.stat().st_mtime > _DEBRIS_SECONDS
            )
            if other.name != name and (debris or not other.name.startswith(".")):
                shutil.rmtree(other, ignore_errors=True)
