"""Indexing: papers → sentence chunks (token-capped) → embeddings → Chroma, incrementally."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rag import snapshot
from rag.config import Settings
from rag.corpus import CorpusError, ReadResult
from rag.embed import Done, embed_texts, get_embedder
from rag.glossary import glossary
from rag.locks import writer
from rag.models import CheckReport, IngestReport, Paper
from rag.store import Chunk, Store, StoreError, chunk_id, is_read_only, reset_vectors
from rag.text import ENDS_IN_ABBREVIATION, count_tokens, token_counter

if TYPE_CHECKING:  # NOTE: llama-index takes a second to import, and only ingest needs it
    from llama_index.core.node_parser import TokenTextSplitter
    from llama_index.core.schema import TextNode

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # hears papers done and papers to do


@lru_cache(maxsize=1)
def _sentence_splitter() -> Callable[[str], list[str]]:
    from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer

    return split_by_sentence_tokenizer()


def split_sentences(text: str) -> list[str]:
    """The sentences of an abstract, verbatim, in order."""
    pieces = [s.strip() for s in _sentence_splitter()(text)]
    sentences: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        # NOTE: the tokenizer keeps "(a) ... (b) ..." enumerations together but splits after "e.g." and "i.e."
        # ("… popular MLLMs, e.g. | LLaVA, and InternVL2 …") and after an "etc." that ends no sentence
        # ("… latency, throughput etc. | to generate better code."); glue such a piece, and a fragment that starts
        # lower-case, back onto its predecessor.
        if sentences and (
            ENDS_IN_ABBREVIATION.search(sentences[-1])
            or (re.match(r"^[a-z(\[]", piece) and not sentences[-1].endswith((".", "!", "?")))
            or (re.match(r"^[a-z]+\b", piece) and sentences[-1].endswith(" etc."))
        ):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


@lru_cache(maxsize=4)
def _token_splitter(chunk_tokens: int, chunk_overlap: int) -> TokenTextSplitter:
    from llama_index.core.node_parser import TokenTextSplitter

    return TokenTextSplitter(chunk_size=chunk_tokens, chunk_overlap=chunk_overlap, tokenizer=token_counter())


def with_sentences(paper: Paper) -> Paper:
    """The paper with where each sentence of its abstract starts (`sentences_of` reads them back), when cutting the
    abstract there gives `split_sentences` exactly."""
    sentences = split_sentences(paper.abstract)
    starts: list[int] = []
    for sentence in sentences:
        at = paper.abstract.find(sentence[:40], starts[-1] + 1 if starts else 0)
        if at < 0:
            break
        starts.append(at)
    found = paper.model_copy(update={"sentence_starts": starts})
    return found if sentences_of(found) == sentences else paper.model_copy(update={"sentence_starts": []})


def with_roles(papers: Sequence[Paper]) -> list[Paper]:
    """The papers with the role probabilities of their sentences (rag.roles), which `roles_of` reads back."""
    from rag.roles import role_model

    probs = role_model().predict_many([sentences_of(p) for p in papers])
    return [p.model_copy(update={"sentence_roles": r.round(4).tolist()}) for p, r in zip(papers, probs, strict=True)]


def roles_of(paper: Paper) -> np.ndarray:
    """The role probabilities of a paper's sentences (rag.roles.COLUMNS): as ingest found them, else predicted now."""
    from rag.roles import COLUMNS, role_model

    sentences = sentences_of(paper)
    kept = np.asarray(paper.sentence_roles, dtype=np.float64)
    if kept.shape == (len(sentences), len(COLUMNS)):
        return kept
    return role_model().predict(sentences)


def sentences_of(paper: Paper) -> list[str]:
    """The sentences of a paper's abstract: cut where ingest found them, else split now (`split_sentences`)."""
    starts = paper.sentence_starts
    if not starts or starts[-1] >= len(paper.abstract):
        return split_sentences(paper.abstract)
    ends = [*starts[1:], len(paper.abstract)]
    return [paper.abstract[a:b].strip() for a, b in zip(starts, ends, strict=True)]


def chunk_paper(paper: Paper, settings: Settings) -> list[TextNode]:
    """One node per sentence; a sentence over `chunk_tokens` is split by tokens. Title on every node."""
    from llama_index.core.schema import TextNode

    splitter = _token_splitter(settings.chunk_tokens, settings.chunk_overlap)
    pieces: list[str] = []
    for sentence in sentences_of(paper):
        if count_tokens(sentence) > settings.chunk_tokens:
            pieces += splitter.split_text(sentence)
        else:
            pieces.append(sentence)
    return [
        TextNode(
            id_=chunk_id(paper, i),
            text=piece,
            metadata={"title": paper.title, "paper_id": paper.paper_id, "position": i},
            excluded_embed_metadata_keys=["paper_id", "position"],
            excluded_llm_metadata_keys=["paper_id", "position"],
            metadata_template="{value}",
        )
        for i, piece in enumerate(pieces)
    ]


def plan(existing: dict[str, tuple[str, str]], results: Sequence[ReadResult]) -> tuple[list[Paper], list[str], int]:
    """Given the indexed papers (id → hash, source): which to (re-)embed, which to drop, how many are current."""
    wanted: dict[str, Paper] = {}
    for result in results:
        for paper in result.papers:
            first = wanted.setdefault(paper.paper_id, paper)
            if first.source != paper.source and first.content_hash != paper.content_hash:
                raise CorpusError(
                    f"paper id {paper.paper_id!r} is claimed by {first.source} ({first.locator}) and "
                    f"{paper.source} ({paper.locator}) with different texts; give one of them another id"
                )
    sources = {r.source for r in results}
    for pid, paper in wanted.items():
        digest, source = existing.get(pid, (paper.content_hash, paper.source))
        if source != paper.source and source not in sources and digest != paper.content_hash:
            raise CorpusError(
                f"paper id {pid!r} of {paper.source} ({paper.locator}) is already indexed from {source} with a "
                "different text; give it another id, or ingest both files together"
            )
    stale = [
        pid
        for pid, (digest, source) in existing.items()
        if (source in sources and pid not in wanted) or (pid in wanted and wanted[pid].content_hash != digest)
    ]
    todo = [p for pid, p in wanted.items() if pid not in existing or existing[pid][0] != p.content_hash]
    unchanged = len(wanted) - len(todo)
    return todo, stale, unchanged


def ingest(
    results: Sequence[ReadResult], settings: Settings, progress: Progress | None = None, *, if_empty: bool = False
) -> IngestReport:
    """Bring the index in line with the given files: embed new or changed papers, drop removed ones.

    Holds the index's writer lock throughout; with `if_empty`, does nothing unless the index is still empty once
    the lock is held (several first runs at once index the corpus once)."""
    store = Store(settings)
    _writable(settings)
    with writer(settings) as writing:
        if if_empty and store.count_papers():
            writing.wrote = False
            return IngestReport(index=settings.index_name, total_papers=store.count_papers())
        report, writing.digest = _ingest(results, settings, store, progress)
        return report


def _writable(settings: Settings) -> None:
    if is_read_only(settings):
        raise StoreError(f"index folder {settings.home / 'chroma'} is read-only; set RAG_HOME to a writable folder")


def _ingest(
    results: Sequence[ReadResult], settings: Settings, store: Store, progress: Progress | None
) -> tuple[IngestReport, str]:
    """The report, and the digest of the index's papers afterwards, whose search snapshot is made (rag.snapshot)."""
    existing = store.paper_hashes()
    todo, stale, unchanged = plan(existing, results)
    report = IngestReport(index=settings.index_name, files=[r.source for r in results], unchanged=unchanged)
    for result in results:
        for why, n in result.skipped.items():
            report.skipped[why] = report.skipped.get(why, 0) + n
    report.removed = sum(1 for pid in stale if pid not in {p.paper_id for p in todo})
    report.updated = sum(1 for p in todo if p.paper_id in existing)
    report.added = len(todo) - report.updated
    store.delete_papers(stale)
    if todo:
        from llama_index.core.schema import MetadataMode

        embedder = get_embedder(settings, bulk=True)
        everyday = glossary()  # NOTE: the bundled one; the index's name depends on it (rag.config)
        # Debris of an interrupted ingest: chunks without a paper record.
        store.delete_papers(p.paper_id for p in todo if p.paper_id not in existing)
        # NOTE: a batch is written in the background while the next one is encoded. Writes stay in order and
        # a paper's record still follows its chunks, so an interrupted ingest stays resumable. Batches are
        # large (RAG_INGEST_BATCH chunks): one encoder call over many texts pads less, and on CPU anything run
        # beside the encoder slows it by more than its own cost (BENCHMARKS.md).
        done = 0
        batches = _batches(todo, settings)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-write") as writer:
            previous: Future[int] | None = None
            current = next(batches, None)
            while current:
                batch, nodes = current
                texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for ns in nodes for n in ns]
                texts += [whole_text(p) for p in batch]
                texts += [everyday.in_everyday_words(whole_text(p)) for p in batch]
                encoded = _within(progress, done, len(batch), len(texts), len(todo))
                vectors = embed_texts(embedder, texts, encoded)
                if previous:
                    report.chunks_embedded += previous.result()
                # NOTE: the next batch is chunked while no write runs. nltk's sentence splitter times its regular
                # expressions by the wall clock (5 s), and a long `add` holding the GIL tripped it at 10,000 papers.
                current = next(batches, None)
                previous = writer.submit(_write_batch, batch, nodes, vectors, store)
                done += len(batch)
            if previous:
                report.chunks_embedded += previous.result()
        if progress:
            progress(len(todo), len(todo))
        get_embedder(settings)  # NOTE: readies the query runtime (its one-time ONNX export) for the next ask
    report.total_papers = store.count_papers()
    kept = {pid: content for pid, (content, _) in existing.items() if pid not in set(stale)}
    name = snapshot.digest({**kept, **{p.paper_id: p.content_hash for p in todo}}.items())
    before = snapshot.digest((pid, content) for pid, (content, _) in existing.items())
    snapshot.ensure(settings, store, name, previous=before, dropped=stale, added=todo)
    return report, name


def _batches(papers: Sequence[Paper], settings: Settings) -> Iterator[tuple[list[Paper], list[list[TextNode]]]]:
    """The papers in runs of about `settings.ingest_batch` chunks, each paper with its chunk nodes."""
    batch: list[Paper] = []
    nodes: list[list[TextNode]] = []
    size = 0
    for paper in map(with_sentences, papers):
        batch.append(paper)
        nodes.append(chunk_paper(paper, settings))
        size += len(nodes[-1])
        if size >= settings.ingest_batch:
            yield with_roles(batch), nodes
            batch, nodes, size = [], [], 0
    if batch:
        yield with_roles(batch), nodes


def _within(progress: Progress | None, done: int, papers: int, texts: int, total: int) -> Done | None:
    """Progress in papers while a batch of `papers` papers (`texts` chunks) is encoded."""
    if progress is None:
        return None
    return lambda encoded: progress(done + papers * encoded // max(texts, 1), total)


def whole_text(paper: Paper) -> str:
    """What a paper's own vector encodes: its title and abstract, as far as the encoder reads (256 word pieces).

    NOTE: on questions in a newcomer's words the whole-abstract vector finds the paper more often than the mean of
    its sentence vectors (dev hit@5 0.56 against 0.43, scripts/fit_answer.py), for one more text per paper."""
    return f"{paper.title}. {paper.abstract}"


def read_both_ways(wholes: np.ndarray, in_everyday_words: np.ndarray) -> np.ndarray:
    """Papers' own vectors: the unit mean of each whole text's vector and that of the same text with its terms in
    everyday words (rag.glossary), as a question's vector is the mean of it read both ways (rag.retrieve).

    NOTE: cross-validated on dev (scripts/fit_answer.py ranker), short lay questions' MRR went from 0.568 to 0.608,
    with no other style worse by more than one question (BENCHMARKS.md, eleventh session)."""
    both = wholes + in_everyday_words
    return np.asarray(both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12), dtype=np.float32)


def _write_batch(
    batch: Sequence[Paper],
    nodes_per_paper: list[list[TextNode]],
    vectors: np.ndarray,
    store: Store,
) -> int:
    """Write the chunks, then the paper records (each with its own vector); return the number of chunks.

    `vectors` holds the chunks' vectors, then one whole-text vector per paper, then one per paper of its whole text
    in everyday words."""
    nodes = [n for ns in nodes_per_paper for n in ns]
    wholes, in_everyday_words = np.split(vectors[len(nodes) :], 2)
    store.put_chunks(
        [
            Chunk(node.id_, node.metadata["paper_id"], node.text, node.metadata["position"], vector)
            for node, vector in zip(nodes, vectors[: len(nodes)], strict=True)
        ]
    )
    store.put_papers(batch, read_both_ways(wholes, in_everyday_words), [len(ns) for ns in nodes_per_paper])
    return len(nodes)


def check(settings: Settings, page: int = 256) -> CheckReport:
    """Find papers whose chunks are missing or lack embeddings, and re-embed them from their own records.

    A paper record keeps its title, abstract and chunk count, so no corpus file is needed for the repair."""
    store = Store(settings)
    _writable(settings)
    with writer(settings) as writing:
        # NOTE: vectors Chroma cannot load are made again for every paper: which ones they held is not known
        rebuilt = store.damaged_vectors()
        if rebuilt:
            store = reset_vectors(settings, rebuilt)
        papers, _ = store.all_papers()
        report = CheckReport(index=settings.index_name, papers=len(papers))
        if rebuilt:
            damaged = papers
        else:
            damaged = [
                p for start in range(0, len(papers), page) for p in _damaged(store, papers[start : start + page])
            ]
        report.damaged = sorted(p.paper_id for p in damaged)
        if damaged:
            log.warning("re-embedding %d damaged paper(s)", len(damaged))
            store.delete_papers(report.damaged)
            repaired, writing.digest = _ingest([ReadResult(source="(repair)", papers=damaged)], settings, store, None)
            report.chunks_embedded = repaired.chunks_embedded
        else:
            writing.digest = snapshot.digest((p.paper_id, p.content_hash) for p in papers)
    return report


def _damaged(store: Store, papers: Sequence[Paper]) -> list[Paper]:
    """The papers of `papers` whose stored chunks are fewer than their record says, or cannot be read back."""
    if not papers:
        return []
    try:
        counts = store.chunk_counts([p.paper_id for p in papers])
        found: dict[str, int] = {}
        for chunk in store.chunks_of([p.paper_id for p in papers]):
            if chunk.embedding is not None and chunk.embedding.size:
                found[chunk.paper_id] = found.get(chunk.paper_id, 0) + 1
    except Exception as exc:  # Chroma's "Error getting embedding": narrow it down to the papers at fault
        if len(papers) == 1:
            log.info("paper %s cannot be read back (%s)", papers[0].paper_id, type(exc).__name__)
            return list(papers)
        half = len(papers) // 2
        return _damaged(store, papers[:half]) + _damaged(store, papers[half:])

    def broken(paper_id: str) -> bool:
        expected, got = counts.get(paper_id, 0), found.get(paper_id, 0)
        return got == 0 if expected < 0 else got != expected  # -1: a record older than the count

    return [p for p in papers if broken(p.paper_id)]
