"""Hybrid retrieval: BM25 over papers (rag.lexical) plus dense sentence and paper similarity, weighted and fused."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from functools import cached_property

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

    def dense_scores(self, vector: np.ndarray) -> dict[str, tuple[float, str]]:
        """Per paper: blend of best sentence and whole-paper cosine, and the best sentence's chunk id."""
        best: dict[str, tuple[float, str]] = {}
        for pid, cid, sim in self.store.query_chunks(vector, min(CHUNK_POOL, self._n_chunks)):
            if pid not in best or sim > best[pid][0]:
                best[pid] = (sim, cid)
        paper_sim = dict(self.store.query_papers(vector, min(PAPER_POOL, len(self._ids))))
        floor_sent = min((s for s, _ in best.values()), default=0.0)
        floor_paper = min(paper_sim.values(), default=0.0)
        out: dict[str, tuple[float, str]] = {}
        for pid in set(best) | set(paper_sim):
            sent, text = best.get(pid, (floor_sent, ""))
            whole = paper_sim.get(pid, floor_paper)
            out[pid] = (SENTENCE_WEIGHT * sent + (1 - SENTENCE_WEIGHT) * whole, text)
        return out

    def search(self, query: str, k: int | None = None, dense_weight: float | None = None) -> list[SearchHit]:
        """The k best papers for the query, fused from dense and BM25 scores."""
        k = k or self.settings.top_k
        if not self._ids or not query.strip():
            return []
        scored, dense, bm25_by_id = self._fuse(query, dense_weight)
        ranked = sorted(scored.items(), key=lambda kv: kv[1], reverse=True)[:k]
        texts = self.store.chunk_texts([dense[pid][1] for pid, _ in ranked if dense.get(pid, (0, ""))[1]])
        return [
            SearchHit(
                paper_id=pid,
                title=self.papers[pid].title,
                score=round(score, 4),
                dense=round(dense.get(pid, (0.0, ""))[0], 4),
                bm25=round(bm25_by_id.get(pid, 0.0), 4),
                best_sentence=texts.get(dense.get(pid, (0.0, ""))[1], ""),
            )
            for pid, score in ranked
            if pid in self.papers
        ]

    def fused_scores(self, query: str, dense_weight: float | None = None) -> dict[str, float]:
        """The fused score of every candidate paper; papers in neither the dense nor the BM25 pool are absent."""
        if not self._ids or not query.strip():
            return {}
        return self._fuse(query, dense_weight)[0]

    def _fuse(
        self, query: str, dense_weight: float | None
    ) -> tuple[dict[str, float], dict[str, tuple[float, str]], dict[str, float]]:
        """Fused scores, with the dense (score, best chunk) and normalised BM25 scores they came from."""
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
        dense_vals = [d for d, _ in dense.values()]
        lo, hi = (min(dense_vals), max(dense_vals)) if dense_vals else (0.0, 1.0)
        scored: dict[str, float] = {}
        for pid in set(dense) | set(bm25_by_id):
            d = dense.get(pid, (lo, ""))[0]
            d_norm = (d - lo) / (hi - lo) if hi > lo else 0.0
            scored[pid] = w * d_norm + (1 - w) * bm25_by_id.get(pid, 0.0)
        return scored, dense, bm25_by_id
