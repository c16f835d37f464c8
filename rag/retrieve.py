"""Hybrid retrieval: BM25 over papers (rag.lexical) plus dense sentence and paper similarity, weighted and fused."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from rag.config import Settings
from rag.embed import Embedder, embed_query, get_embedder
from rag.lexical import LexicalIndex, lexical_index
from rag.models import Paper, SearchHit
from rag.store import Store

log = logging.getLogger(__name__)

# NOTE: weights and pools tuned on eval/dev.jsonl and eval/dev_topics.jsonl (scripts/tune_fusion.py); naive RRF
# loses to dense alone, and smaller pools give a paper outside them the floor score, so topics lose papers.
SENTENCE_WEIGHT = 0.8
CHUNK_POOL = 300
PAPER_POOL = 200
BM25_POOL = 200
# Second stage: the first stage's best RERANK_POOL papers are ranked again by a logistic blend of their
# best-sentence, whole-paper and BM25 scores, each standardised over the pool; the first stage's own best
# RERANK_KEEP stay first. Fitted by scripts/fit_ranker.py on eval/dev.jsonl, eval/dev_topics.jsonl and
# eval/dev_paraphrase.jsonl: the reranker finds more of a topic's papers than any fixed weighting of the first stage,
# and the first stage places a single asked-about paper at the top more often.
RERANK_POOL = 40
RERANK_KEEP = 2
RERANK_WEIGHTS = (1.09, -0.23, 2.09)  # sentence, paper, BM25
RERANK_BIAS = -3.34


class Retriever:
    """Finds papers for a query; every method returns SearchHits, best first, each paper once."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings)
        self._lock = threading.Lock()
        papers, _ = self.store.all_papers()
        self.papers: dict[str, Paper] = {p.paper_id: p for p in papers}
        self._ids = list(self.papers)
        # NOTE: counted once; asking Chroma for counts on every query costs a round trip each.
        self._n_chunks = self.store.count_chunks()

    @cached_property
    def embedder(self) -> Embedder:
        return get_embedder(self.settings)

    @cached_property
    def idf(self) -> dict[str, float]:
        """Inverse document frequency of each stemmed content word over the indexed papers."""
        from rag.text import content_words

        df: dict[str, int] = defaultdict(int)
        for paper in self.papers.values():
            for word in content_words(f"{paper.title} {paper.abstract}"):
                df[word] += 1
        n = len(self.papers) + 1
        return {word: float(np.log(n / (count + 0.5))) for word, count in df.items()}

    def word_weight(self, word: str) -> float:
        """IDF of a word; words never seen in the corpus weigh like the rarest."""
        return self.idf.get(word, float(np.log(len(self.papers) + 2)))

    @cached_property
    def lexical(self) -> LexicalIndex:
        return lexical_index(list(self.papers.values()))

    def bm25_scores(self, query: str) -> np.ndarray:
        """BM25 score of every paper (in self._ids order) for the query."""
        if not self._ids:
            return np.zeros(0)
        return self.lexical.scores(query)

    def dense_scores(self, vector: np.ndarray) -> dict[str, Dense]:
        """Per paper: cosine of its best sentence (and that sentence's chunk id) and of the whole paper.

        Papers outside one of the two pools get that pool's lowest similarity."""
        best: dict[str, tuple[float, str]] = {}
        for pid, cid, sim in self.store.query_chunks(vector, min(CHUNK_POOL, self._n_chunks)):
            if pid not in best or sim > best[pid][0]:
                best[pid] = (sim, cid)
        paper_sim = dict(self.store.query_papers(vector, min(PAPER_POOL, len(self._ids))))
        floor_sent = min((s for s, _ in best.values()), default=0.0)
        floor_paper = min(paper_sim.values(), default=0.0)
        return {
            pid: Dense(best.get(pid, (floor_sent, ""))[0], paper_sim.get(pid, floor_paper), best.get(pid, (0, ""))[1])
            for pid in set(best) | set(paper_sim)
        }

    def search(self, query: str, k: int | None = None, dense_weight: float | None = None) -> list[SearchHit]:
        """The k best papers for the query: fused from dense and BM25 scores, then the best of them reranked."""
        k = k or self.settings.top_k
        pool, features, first = self.candidates(query, max(RERANK_POOL, k), dense_weight)
        if not pool:
            return []
        ranked = ranking(pool, rerank(features))[:k]
        best = {pid: first.dense[pid].chunk_id for pid, _ in ranked if pid in first.dense}
        texts = self.store.chunk_texts([cid for cid in best.values() if cid])
        return [
            SearchHit(
                paper_id=pid,
                title=self.papers[pid].title,
                score=round(score, 4),
                dense=round(first.dense_blend(pid), 4),
                bm25=round(first.bm25.get(pid, 0.0), 4),
                best_sentence=texts.get(best.get(pid, ""), ""),
            )
            for pid, score in ranked
            if pid in self.papers
        ]

    def candidates(
        self, query: str, pool: int = RERANK_POOL, dense_weight: float | None = None
    ) -> tuple[list[str], np.ndarray, FirstStage]:
        """The first stage's best `pool` papers and their reranking features (best sentence, whole paper, BM25)."""
        if not self._ids or not query.strip():
            return [], np.zeros((0, 3)), FirstStage({}, {}, {})
        first = self._fuse(query, dense_weight)
        ids = sorted(first.fused, key=first.fused.__getitem__, reverse=True)[:pool]
        dense = first.dense.values()
        lowest = Dense(min((d.sentence for d in dense), default=0.0), min((d.paper for d in dense), default=0.0), "")
        features = np.array(
            [
                (first.dense.get(pid, lowest).sentence, first.dense.get(pid, lowest).paper, first.bm25.get(pid, 0.0))
                for pid in ids
            ]
        )
        return ids, features, first

    def fused_scores(self, query: str, dense_weight: float | None = None) -> dict[str, float]:
        """The first stage's fused score of every candidate paper; papers in neither pool are absent."""
        if not self._ids or not query.strip():
            return {}
        return self._fuse(query, dense_weight).fused

    def _fuse(self, query: str, dense_weight: float | None) -> FirstStage:
        """Fused scores, with the dense scores and max-normalised BM25 scores they came from."""
        w = self.settings.dense_weight if dense_weight is None else dense_weight
        vector = embed_query(self.embedder, query)
        dense = self.dense_scores(vector)
        bm25 = self.bm25_scores(query)
        bm25_max = float(bm25.max()) if bm25.size else 0.0
        bm25_by_id: dict[str, float] = {}
        if bm25_max > 0:
            # NOTE: only the best BM25 papers can win; skip scoring the long tail one by one.
            top = np.argpartition(-bm25, min(BM25_POOL, bm25.size - 1))[:BM25_POOL]
            bm25_by_id = {self._ids[i]: float(bm25[i]) / bm25_max for i in top if bm25[i] > 0}
        first = FirstStage({}, dense, bm25_by_id)
        blends = [first.dense_blend(pid) for pid in dense]
        lo, hi = (min(blends), max(blends)) if blends else (0.0, 1.0)
        for pid in set(dense) | set(bm25_by_id):
            d = first.dense_blend(pid) if pid in dense else lo
            d_norm = (d - lo) / (hi - lo) if hi > lo else 0.0
            first.fused[pid] = w * d_norm + (1 - w) * bm25_by_id.get(pid, 0.0)
        return first


class Dense(NamedTuple):
    sentence: float  # cosine of the paper's best sentence
    paper: float  # cosine of the whole paper (its mean sentence vector)
    chunk_id: str  # the best sentence's chunk; "" when the paper was only in the paper pool


@dataclass
class FirstStage:
    """One query's first-stage scores: fused, dense and max-normalised BM25, by paper id."""

    fused: dict[str, float]
    dense: dict[str, Dense]
    bm25: dict[str, float]

    def dense_blend(self, pid: str) -> float:
        d = self.dense.get(pid)
        return SENTENCE_WEIGHT * d.sentence + (1 - SENTENCE_WEIGHT) * d.paper if d else 0.0


def ranking(pool: Sequence[str], relevance: np.ndarray) -> list[tuple[str, float]]:
    """The pool (in first-stage order) as ranked: its first RERANK_KEEP in place, the rest by relevance.

    A kept paper's score is at least the relevance of every paper below it, so scores fall with rank."""
    order = list(range(min(RERANK_KEEP, len(pool))))
    order += sorted(range(len(order), len(pool)), key=lambda i: -relevance[i])
    scores = np.maximum.accumulate(relevance[order][::-1])[::-1]
    return [(pool[i], float(score)) for i, score in zip(order, scores, strict=True)]


def rerank(features: np.ndarray) -> np.ndarray:
    """Relevance in (0, 1) of each candidate: the fitted logistic blend of its features, standardised over the pool."""
    if not len(features):
        return np.zeros(0)
    spread = features.std(axis=0)
    z = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    logits = z @ np.asarray(RERANK_WEIGHTS) + RERANK_BIAS
    return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)
