"""The package's public API: what the CLI, the Streamlit app and users' scripts call."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answer import ask_stream as answer_stream
from rag.compare import DEFAULT_ASPECTS, Comparer
from rag.config import BUNDLED_CORPUS, Settings, env_notices, get_settings
from rag.corpus import FORMATS, ReadResult, json_line, numbered_lines, read_path
from rag.errors import RagError
from rag.locks import version
from rag.models import Answer, CheckReport, Comparison, EvalReport, IngestReport, Paper, ReviewDraft, SearchHit, Turn
from rag.prompts import CANNOT_ANSWER, CLOSEST_PAPERS
from rag.retrieve import Retriever
from rag.review import Reviewer
from rag.store import Store, earlier_papers, reopen
from rag.themes import align, cluster, distinctive_terms, place, project, theme_names, vocabulary_of

if TYPE_CHECKING:
    from rag.index import Progress

# NOTE: the front ends (the CLI, the app) and users' scripts import rag.api, rag.models and rag.export only
__all__ = [
    "CANNOT_ANSWER", "CLOSEST_PAPERS", "DEFAULT_ASPECTS", "FORMATS", "RagError", "Retriever", "Settings",
    "ask", "ask_stream", "check_index", "compare", "ensure_index", "env_notices", "evaluate", "forget_retriever",
    "get_retriever", "get_settings", "ingest_paths", "papers", "read_history", "read_paths", "read_texts", "review",
    "search", "topic_map",
]  # fmt: skip

log = logging.getLogger(__name__)

_retrievers: dict[tuple[str, str], tuple[Retriever, str]] = {}  # retriever, index version it read
_retrievers_lock = threading.Lock()
_generations: dict[tuple[str, str], int] = {}  # bumped by every ingest of the index


def _key(settings: Settings) -> tuple[str, str]:
    return (settings.chroma_url or str(settings.home), settings.index_name)


def read_paths(paths: Sequence[str | Path]) -> list[ReadResult]:
    """Parse every file (every corpus file of a folder) before touching the index, so one bad file changes nothing."""
    return [result for p in (paths or [BUNDLED_CORPUS]) for result in read_path(p)]


def ingest_paths(
    paths: Sequence[str | Path], settings: Settings | None = None, progress: Progress | None = None
) -> IngestReport:
    """Index corpus files (the bundled corpus when none are given). Waits for another writer of the same index."""
    from rag.index import ingest  # llama-index's node machinery is needed only here

    settings = settings or get_settings()
    results = read_paths(paths)
    carry_over(settings)
    report = ingest(results, settings, progress=progress)
    forget_retriever(settings)
    return report


def carry_over(settings: Settings) -> bool:
    """After an upgrade that changed what the index stores (a new index name), index the papers of the earlier index
    here again, once, before anything else is indexed: a researcher's library outlives the upgrade. Whether it did."""
    from rag.index import ingest

    earlier = earlier_papers(settings) if Store(settings).count_papers() == 0 else None
    if earlier is None:
        return False
    name, papers = earlier
    log.warning(
        "this version stores papers differently: indexing again the %d papers of the earlier index %s",
        len(papers), name,
    )  # fmt: skip
    report = ingest([ReadResult(f"the earlier index {name}", papers)], settings, if_empty=True)
    forget_retriever(settings)
    if not report.added:  # another process carried them over while we waited: read what it wrote
        reopen(settings)
    return True


def check_index(settings: Settings | None = None) -> CheckReport:
    """Find and re-embed papers whose chunks are missing or lack embeddings (`rag ingest --check`)."""
    from rag.index import check

    settings = settings or get_settings()
    report = check(settings)
    forget_retriever(settings)
    return report


def ensure_index(settings: Settings | None = None) -> Store:
    """The store, with papers indexed first if the index is empty: those of an index an earlier version made here
    (after an upgrade that changed what the index stores), else the bundled corpus."""
    from rag.index import ingest

    settings = settings or get_settings()
    store = Store(settings)
    if store.count_papers() == 0:
        if carry_over(settings):
            return Store(settings)
        report = ingest(read_paths([]), settings, if_empty=True)
        forget_retriever(settings)
        if not report.added:  # another process indexed it while we waited: read what it wrote
            reopen(settings)
            store = Store(settings)
    return store


def get_retriever(settings: Settings | None = None) -> Retriever:
    """A retriever over the current index, built once per index and process, and again after another process
    on this machine wrote to the index.

    NOTE: no lock is held while the index is opened or filled: a first run ingests, and ingesting forgets cached
    retrievers, which takes the lock. A retriever built while another thread ingested is not cached."""
    settings = settings or get_settings()
    key = _key(settings)
    current = version(settings)
    with _retrievers_lock:
        cached = _retrievers.get(key)
        if cached is not None and cached[1] == current:
            return cached[0]
    if cached is not None:
        reopen(settings)  # NOTE: another process wrote the index since this one read it
    store = ensure_index(settings)
    with _retrievers_lock:
        generation = _generations.get(key, 0)
    retriever = Retriever(settings, store)
    with _retrievers_lock:
        if _generations.get(key, 0) == generation:
            _retrievers[key] = (retriever, version(settings))
    return retriever


def forget_retriever(settings: Settings) -> None:
    """Drop the cached retriever after the index changed."""
    key = _key(settings)
    with _retrievers_lock:
        _retrievers.pop(key, None)
        _generations[key] = _generations.get(key, 0) + 1


def papers(settings: Settings | None = None) -> list[Paper]:
    """Every indexed paper, sorted by title (the bundled corpus is indexed first if the index is empty)."""
    found, _ = ensure_index(settings or get_settings()).all_papers()
    return sorted(found, key=lambda p: p.title.lower())


def search(query: str, settings: Settings | None = None, k: int | None = None) -> list[SearchHit]:
    """The k papers most relevant to a query, best first, each with its relevance and best-matching sentence."""
    return get_retriever(settings).search(query, k=k)


def ask(question: str, settings: Settings | None = None, k: int | None = None, history: Sequence[Turn] = ()) -> Answer:
    """Answer a question with verified citations (engine from settings)."""
    final = None
    for item in ask_stream(question, settings, k=k, history=history):
        if isinstance(item, Answer):
            final = item
    assert final is not None
    return final


def ask_stream(
    question: str, settings: Settings | None = None, k: int | None = None, history: Sequence[Turn] = ()
) -> Iterator[str | Answer]:
    """Text pieces as the LLM writes them, then the verified Answer; for the UI."""
    settings = settings or get_settings()
    yield from answer_stream(question, get_retriever(settings), settings, k=k, history=history)


def compare(
    request: str,
    settings: Settings | None = None,
    paper_ids: Sequence[str] | None = None,
    aspects: Sequence[str] | None = None,
) -> Comparison:
    """A cited paper-by-aspect matrix for the approaches a request names (or explicit paper ids)."""
    settings = settings or get_settings()
    return Comparer(get_retriever(settings), settings).compare(request, paper_ids=paper_ids, aspects=aspects)


def review(topic: str, settings: Settings | None = None) -> ReviewDraft:
    """A cited literature-review draft of a topic, with a coverage report."""
    settings = settings or get_settings()
    return Reviewer(get_retriever(settings), settings).review(topic)


def evaluate(path: str | Path, settings: Settings | None = None, k: int | None = None) -> EvalReport:
    """Score the pipeline on a file of labelled questions or comparison requests, overall and per style."""
    from rag.evaluate import evaluate as run  # NOTE: rag.evaluate calls back into this module

    return run(Path(path), settings or get_settings(), k=k)


def read_texts(path: str | Path, field: str = "text") -> Iterator[str]:
    """Each non-empty line of a batch file: plain text, or a JSON object's `field` (or question, query, …)."""
    for n, line in numbered_lines(path, "batch file"):
        if not line.startswith("{"):
            yield line
            continue
        record = json_line(path, n, line)
        values = record if isinstance(record, dict) else {}
        keys = [field, "question", "query", "request", "topic", "text"]
        value = next((values[k] for k in keys if isinstance(values.get(k), str)), None)
        if value is None:
            raise RagError(f"{path}:{n}: no {field!r} field in the JSON object")
        yield value


def read_history(path: str | Path) -> list[Turn]:
    """Earlier turns from a JSON Lines file: `rag ask --json` output, or {"question", "paper_ids"} objects."""
    turns = []
    for n, line in numbered_lines(path, "history file"):
        record: Any = json_line(path, n, line)
        if not isinstance(record, dict) or not isinstance(record.get("question"), str):
            raise RagError(f"{path}:{n}: expected an object with a 'question' string")
        ids = record.get("paper_ids") or [
            c.get("paper_id") for c in record.get("citations") or [] if isinstance(c, dict)
        ]
        turns.append(Turn(record["question"], [str(i) for i in ids if i]))
    return turns


def _layout(settings: Settings, ids: list[str], vectors: Any) -> Any:
    """The map's coordinates: the last layout of this index (RAG_HOME/layouts), continued when papers were added or
    removed, so the map a reader knows keeps its shape; computed afresh when fewer than half the papers are known."""
    path = settings.home / "layouts" / f"{settings.index_name}.json"
    try:
        last: dict[str, list[float]] = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        log.warning("ignoring the unreadable map layout %s", path)
        last = {}
    if set(last) == set(ids):
        return [last[i] for i in ids]
    known = {n: (last[i][0], last[i][1]) for n, i in enumerate(ids) if i in last}
    continued = len(known) >= len(ids) / 2
    coords = align(project(vectors, place(vectors, known)), known) if continued else project(vectors)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({i: [float(x), float(y)] for i, (x, y) in zip(ids, coords, strict=True)}))
        os.replace(partial, path)
    except OSError as exc:
        log.warning("could not keep the map layout (%s); the next map may be drawn differently", exc)
    return coords


# The most papers the topic map draws. NOTE: t-SNE over 3,000 papers takes about 20 s on two cores and grows
# faster than the count; past a few thousand the dots merge anyway.
MAP_PAPERS = 3000


def topic_map(settings: Settings | None = None) -> list[dict[str, Any]]:
    """The papers with 2-D coordinates and a theme name, for plotting the library: every paper, or beyond
    MAP_PAPERS a sample of them chosen by a hash of their ids (so papers added later leave most of it in place).
    Only the drawn papers' vectors are read."""
    settings = settings or get_settings()
    retriever = get_retriever(settings)
    ids = list(retriever.papers)
    if len(ids) > MAP_PAPERS:
        ids = sorted(ids, key=lambda pid: hashlib.sha256(pid.encode()).digest())[:MAP_PAPERS]
    papers, vectors = retriever.store.papers_with_vectors(ids)
    if not papers:
        return []
    # NOTE: about √(n/2) themes (9 at 168 papers), not the silhouette's pick, which split 168 papers in two
    labels = cluster(vectors, clusters=max(2, min(12, round((len(papers) / 2) ** 0.5))))
    docs = [f"{p.title}. {p.abstract}" for p in papers]
    groups = [[d for d, label in zip(docs, labels, strict=True) if label == k] for k in range(int(labels.max()) + 1)]
    titles = vocabulary_of([p.title for p in papers])
    names = theme_names(distinctive_terms(groups, top=8, vocabulary=titles))
    coords = _layout(settings, [p.paper_id for p in papers], vectors)
    return [
        {"paper_id": p.paper_id, "title": p.title, "x": float(x), "y": float(y), "theme": names[int(label)]}
        for p, (x, y), label in zip(papers, coords, labels, strict=True)
    ]
