"""What retrieval reads when a process opens an index, kept on disk beside it: the papers' ids and titles, how many
papers each word is in, and the BM25 index. BM25 reads each paper's terms followed by the everyday words for the
glossary's terms it uses (rag.glossary), so the snapshot names the glossary it was built with; when RAG_GLOSSARY
changes, the next process builds the BM25 index again from the kept parts, and keeps it.

Without it every process read every paper record (13.5 s at 100,000 papers) and built the lexical index (30 s)
before its first answer. A snapshot is named by the digest of the indexed papers' ids and content hashes; an ingest
writes it while it holds the index (so an unchanged re-ingest finds it made), and names the digest in the index's
version (rag.locks). Beside it lie each paper's parts (Parts: its terms, content words and acronym definitions), so
an ingest makes the next snapshot from the last one and the papers it added, changed and removed, without reading
every record again. A process opening the index loads the snapshot its version names; when none is kept here (a
client of a Chroma server after another client's ingest) it brings the newest one kept up to date from the records'
content hashes and the changed papers; when none at all is (an index written by an older version of this tool), it
builds one from every record. Either is kept for the next process. An embedded index's snapshot also holds every
sentence's text and vector (rag.sentences), made the same way. Each is written into a temporary folder and
renamed into place: a reader sees a whole snapshot or none, and a kill -9 mid-write leaves the previous one readable.
Paper records are then fetched by id, for the hits only (rag.retrieve.Papers).
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
import zipfile
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from rag.config import Settings
from rag.glossary import Glossary, glossary
from rag.lexical import LexicalIndex, choose_acronyms, definitions, indexed_terms
from rag.locks import first_version, version
from rag.models import Paper
from rag.sentences import Sentences
from rag.store import Store
from rag.text import paper_words

log = logging.getLogger(__name__)

_PAPERS = "papers.json"
_PARTS = "parts.json"
_PART_ARRAYS = "parts.npz"
_T = TypeVar("_T")
_DEBRIS_SECONDS = 3600.0  # a temporary folder this old is a killed writer's, not one still writing


@dataclass
class Snapshot:
    ids: list[str]  # the indexed papers, in the lexical index's order
    titles: list[str]  # their titles, in the same order (hits, and the app's paper picker, need no record)
    word_papers: dict[str, int]  # stemmed content word → how many papers' title or abstract it is in
    lexical: LexicalIndex
    glossary: str  # the digest of the glossary the lexical index was built with (rag.glossary)
    sentences: Sentences | None = None  # an embedded index's sentences, in the same order (rag.sentences)


def digest(papers: Iterable[tuple[str, str]]) -> str:
    """The name of the snapshot of these (paper id, content hash) pairs, whatever their order."""
    text = "\n".join(f"{pid}:{content}" for pid, content in sorted(papers))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Parts:
    """What each indexed paper gives a snapshot, kept beside it so that the next one is made without its text: its
    terms before acronyms are folded (rag.lexical.indexed_terms), its content words and the acronyms it defines."""

    ids: list[str]
    hashes: list[str]  # each paper's content hash: what changed since is known without reading its text
    titles: list[str]
    terms: list[list[str]]
    words: list[list[str]]
    defined: list[list[tuple[str, tuple[str, ...]]]]

    @classmethod
    def of(cls, papers: Sequence[Paper]) -> Parts:
        return cls(
            [p.paper_id for p in papers],
            [p.content_hash for p in papers],
            [p.title for p in papers],
            [indexed_terms(p) for p in papers],
            [sorted(paper_words(f"{p.title} {p.abstract}")) for p in papers],
            [definitions(f"{p.title}. {p.abstract}") for p in papers],
        )

    def replaced(self, dropped: Collection[str], added: Sequence[Paper]) -> Parts:
        """These parts less the papers `dropped` (removed or changed), plus those `added` (new or changed)."""
        gone = set(dropped) | {p.paper_id for p in added}
        keep = [i for i, pid in enumerate(self.ids) if pid not in gone]
        new = Parts.of(added)

        def kept(values: list[_T]) -> list[_T]:
            return [values[i] for i in keep]

        return Parts(
            kept(self.ids) + new.ids,
            kept(self.hashes) + new.hashes,
            kept(self.titles) + new.titles,
            kept(self.terms) + new.terms,
            kept(self.words) + new.words,
            kept(self.defined) + new.defined,
        )

    def snapshot(self, glossary: Glossary) -> Snapshot:
        """The snapshot of these papers; each paper's lexical terms are followed by the everyday words for the
        glossary's terms it uses."""
        acronyms = choose_acronyms(d for found in self.defined for d in found)
        counts = Counter(w for words in self.words for w in words)
        lexical = LexicalIndex.of_terms([glossary.with_everyday_terms(t) for t in self.terms], acronyms)
        return Snapshot(self.ids, self.titles, dict(counts), lexical, glossary.digest)


def build(papers: Sequence[Paper], glossary: Glossary) -> Snapshot:
    return Parts.of(papers).snapshot(glossary)


def ensure(
    settings: Settings, store: Store, name: str, *, previous: str = "", dropped: Collection[str] = (),
    added: Sequence[Paper] = (),
) -> None:  # fmt: skip
    """Make the snapshot called `name` unless it exists (an ingest calls this): from the snapshot called `previous`
    less the papers `dropped` plus those `added` when its parts are readable, else from every paper record."""
    root = _root(settings)
    words = glossary(settings.glossary)
    found = _load(root / name)
    if found is not None and found.glossary == words.digest and (found.sentences is not None or settings.chroma_url):
        return  # NOTE: an embedded index's snapshot made before sentences were kept beside it is made again
    before = _load_parts(root / previous) if previous else None
    if before is not None:
        parts = before.replaced(dropped, added)
    else:
        papers, _ = store.all_papers()
        parts = Parts.of(papers)
    sentences = None
    if not settings.chroma_url:
        kept = _load_sentences(root / previous, len(before.ids)) if previous and before is not None else None
        fresh = {p.paper_id for p in added}
        sentences = _sentences(parts.ids, store, fresh, kept, before.ids if before else ())
    _save(parts.snapshot(words), parts, root, name, sentences)


def open_snapshot(settings: Settings, store: Store) -> tuple[Snapshot, list[Paper] | None]:
    """The snapshot of the index as it is now, and the paper records when they had to be read to build it."""
    # NOTE: "<digest>.<nonce>" after an ingest, a bare nonce after other writes; anything else names no snapshot
    name = version(settings).split(".")[0]
    name = name if re.fullmatch(r"[0-9a-f]{8,64}", name) else ""
    root = _root(settings)
    words = glossary(settings.glossary)
    if name and (found := _load(root / name)) is not None:
        if found.glossary == words.digest:
            return found, None
        if (parts := _load_parts(root / name)) is not None:  # NOTE: RAG_GLOSSARY changed: only BM25 is made again
            log.info("the glossary changed; rebuilding the lexical index")
            made = parts.snapshot(words)
            kept = None if settings.chroma_url else _sentences(parts.ids, store, (), found.sentences, parts.ids)
            made.sentences = _save(made, parts, root, name, kept) or found.sentences
            return made, None
    if name and (updated := _catch_up(store, root)) is not None:  # NOTE: another client of a Chroma server ingested
        made = updated.snapshot(words)
        # NOTE: rare embedded (a failed ingest, a damaged snapshot): the sentences are read again
        made.sentences = _save(
            made, updated, root, name, None if settings.chroma_url else _sentences(updated.ids, store)
        )
        return made, None
    papers, _ = store.all_papers()
    parts = Parts.of(papers)
    made = parts.snapshot(words)
    if name := name or first_version(settings):
        made.sentences = _save(made, parts, root, name, None if settings.chroma_url else _sentences(parts.ids, store))
    return made, papers


def _sentences(
    ids: Sequence[str],
    store: Store,
    fresh: Collection[str] = (),
    kept: Sentences | None = None,
    kept_ids: Sequence[str] = (),
) -> Callable[[Path], None]:
    """What writes an embedded snapshot's sentences into its folder (rag.sentences.Sentences.write)."""
    return lambda folder: Sentences.write(folder, ids, store.chunks_of, fresh, kept, kept_ids)


def _load_sentences(folder: Path, papers: int) -> Sentences | None:
    try:
        return Sentences.load(folder, papers)
    except (OSError, ValueError) as exc:
        log.warning("the sentences kept in %s are unreadable (%s); reading them again", folder, type(exc).__name__)
        return None


def _catch_up(store: Store, root: Path) -> Parts | None:
    """The parts of the index as it is now, from the newest snapshot kept here and the papers changed since: their
    content hashes are read from every record's metadata, and only the changed papers' texts. None when no snapshot
    with parts is kept."""
    kept = sorted((f for f in root.glob("[0-9a-f]*") if (f / _PARTS).is_file()), key=lambda f: f.stat().st_mtime)
    before = _load_parts(kept[-1]) if kept else None
    if before is None:
        return None
    now = {pid: content for pid, (content, _) in store.paper_hashes().items()}
    old = dict(zip(before.ids, before.hashes, strict=True))
    dropped = [pid for pid, content in old.items() if now.get(pid) != content]
    added = store.get_papers([pid for pid, content in now.items() if old.get(pid) != content])
    return before.replaced(dropped, added)


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
        sentences = Sentences.load(folder, len(ids))
        lexical = LexicalIndex.load(folder)
        return Snapshot(ids, titles, dict(papers["word_papers"]), lexical, str(papers.get("glossary", "")), sentences)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # NOTE: damaged files: built again from the records
        log.warning("the search snapshot in %s is unreadable (%s); rebuilding it", folder, type(exc).__name__)
        return None


def _load_parts(folder: Path) -> Parts | None:
    """The parts kept beside a snapshot, or None when there are none or they are unreadable (a snapshot written
    before parts were kept, damaged files): the caller reads every record instead."""
    try:
        meta = json.loads((folder / _PARTS).read_text(encoding="utf-8"))
        with np.load(folder / _PART_ARRAYS) as arrays:
            terms = _unpack(meta["terms"], arrays["terms"], arrays["term_ends"])
            words = _unpack(meta["words"], arrays["words"], arrays["word_ends"])
        defined = [[(str(key), tuple(form)) for key, form in found] for found in meta["defined"]]
        ids, hashes, titles = list(meta["ids"]), list(meta["hashes"]), list(meta["titles"])
        if not len(ids) == len(hashes) == len(titles) == len(terms) == len(words) == len(defined):
            raise ValueError("parts differ in number")
        return Parts(ids, hashes, titles, terms, words, defined)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("the snapshot's parts in %s are unreadable (%s); reading every record", folder, type(exc).__name__)
        return None


def _pack(lists: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Lists of strings as a vocabulary, the ids of every list run together, and where each list ends."""
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for items in lists for w in items), dtype=np.int32)
    ends = np.cumsum([len(items) for items in lists], dtype=np.int64)
    return list(vocab), ids, ends


def _unpack(vocab: list[str], ids: np.ndarray, ends: np.ndarray) -> list[list[str]]:
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    words = [vocab[i] for i in ids.tolist()]
    return [words[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def _save(
    snapshot: Snapshot, parts: Parts, root: Path, name: str, sentences: Callable[[Path], None] | None = None
) -> Sentences | None:
    """Write the snapshot and its parts as `root/name`, with the sentences `sentences` writes, then delete the others
    (their index versions are gone). The sentences as written, memory-mapped, or None."""
    spare = root / f".{name}.{os.getpid()}.tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(spare, ignore_errors=True)
        spare.mkdir()
        snapshot.lexical.save(spare)
        if sentences is not None:
            sentences(spare)
        term_vocab, term_ids, term_ends = _pack(parts.terms)
        word_vocab, word_ids, word_ends = _pack(parts.words)
        with (spare / _PART_ARRAYS).open("wb") as out:
            np.savez(out, terms=term_ids, term_ends=term_ends, words=word_ids, word_ends=word_ends)
        meta = {"ids": parts.ids, "hashes": parts.hashes, "titles": parts.titles, "terms": term_vocab,
                "words": word_vocab, "defined": parts.defined}  # fmt: skip
        (spare / _PARTS).write_text(json.dumps(meta), encoding="utf-8")
        papers = {"ids": snapshot.ids, "titles": snapshot.titles, "word_papers": snapshot.word_papers,
                  "glossary": snapshot.glossary}  # fmt: skip
        (spare / _PAPERS).write_text(json.dumps(papers), encoding="utf-8")
        with contextlib.suppress(FileNotFoundError):  # NOTE: one that could not be read is replaced
            (root / name).rename(root / f".{name}.{os.getpid()}.old")
        spare.rename(root / name)
    except OSError as exc:  # NOTE: a read-only or full disk: this process searches from what it built
        shutil.rmtree(spare, ignore_errors=True)
        if not (root / name).is_dir():  # another process renamed its copy into place first: no loss
            log.info("could not keep the search snapshot in %s (%s)", root, exc)
            return None
    for other in root.iterdir():
        with contextlib.suppress(OSError):
            debris = other.name.startswith(".") and (
                other.name.endswith(".old") or time.time() - other.stat().st_mtime > _DEBRIS_SECONDS
            )
            if other.name != name and (debris or not other.name.startswith(".")):
                shutil.rmtree(other, ignore_errors=True)
    return _load_sentences(root / name, len(snapshot.ids)) if sentences is not None else None
