"""Hybrid retrieval: one calibrated ranking of papers from three signals.

Each candidate paper gets three features: the cosine of its best sentence, the cosine of its whole abstract, and
its BM25 score. Each reads the query both as written and with the field's terms for its everyday words
(rag.glossary: "two graphics cards" is also read as "two GPU"): the cosines are to the mean of the two embeddings,
and BM25 reads the query's words followed by the terms. An everyday phrase the glossary misreads then adds a term
but takes none of the user's words away. Papers are read both ways too: BM25 reads each paper with the everyday
words for the terms it uses ("a chip you can rewire" finds papers on FPGAs, rag.snapshot), and a paper's own vector
is the mean of its abstract embedded as written and in everyday words (rag.index.read_both_ways). A logistic model
(rag.tuned.RANKER, fitted by scripts/fit_answer.py on the dev questions) weighs them, with its own weights for
questions that ask for many papers.
"""

from __future__ import annotations

import logging
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rag.config import Settings
from rag.embed import Embedder, embed_query, get_embedder
from rag.glossary import glossary
from rag.lexical import LexicalIndex, indexed_terms
from rag.models import Paper, SearchHit
from rag.snapshot import open_snapshot
from rag.store import Chunk, Store, chunk_id
from rag.text import asks_for_many, compounds
from rag.tuned import COMMON_SHARE, RANKER

log = logging.getLogger(__name__)

# Candidate pools: the nearest chunks, the nearest whole abstracts and the best BM25 papers. A paper outside a pool
# gets that pool's lowest score. Large enough that every dev question's gold paper is a candidate.
CHUNK_POOL = 300
PAPER_POOL = 200
BM25_POOL = 200
# Each signal is standardised over its best NORM_TOP candidates (ranker_features). On dev, cross-validated: 150 gave
# topic recall@10 0.907 and lay hit@5 0.643; 100 gave 0.889 and 0.667; 50 gave 0.889 and 0.667; 20 gave 0.852 and
# 0.643; every candidate (the whole index here) 0.913 and 0.651, but moved answers when unrelated papers were added.
NORM_TOP = 150
# How alike a paper is to the rest of the library: its mean cosine to this many nearest papers. Three, not one, so that
# two papers of a field (Roman soldiers' pay, Byzantine coinage) do not make each other look at home. On the dev
# questions of eval/mixed_dev.jsonl, cross-validated: 29 of 36 near-miss questions refused for 9 of 60 answerable
# ones, against 27 for 7 with the nearest alone; the bundled dev questions' figures are the same.
LIKENESS_OF = 3


@dataclass
class Scored:
    """One query's candidates: ids, raw features (best sentence, whole abstract, BM25), relevance, best sentence."""

    ids: list[str]
    features: np.ndarray
    relevance: np.ndarray
    best_sentence: dict[str, int]  # paper id → the position of its sentence closest to the query, when known

    def ranked(self) -> list[tuple[str, float]]:
        order = np.argsort(-self.relevance, kind="stable")
        return [(self.ids[i], float(self.relevance[i])) for i in order]


class Papers(Mapping[str, Paper]):
    """The indexed papers by id: every id known when the index is opened, each record fetched from the store the
    first time it is asked for (rag.snapshot). Iterating over the values reads every record, once."""

    def __init__(
        self, store: Store, ids: Sequence[str], titles: Sequence[str], records: Sequence[Paper] | None = None
    ) -> None:
        self._store = store
        self._ids = set(ids)
        self._order = list(ids)
        self.titles: dict[str, str] = dict(zip(ids, titles, strict=True))  # id → title, read with the ids
        self._records: dict[str, Paper] = {p.paper_id: p for p in records or ()}

    def fetch(self, paper_ids: Iterable[str]) -> dict[str, Paper]:
        """The records of these papers (those indexed), in one read of the store for those not yet read."""
        wanted = [pid for pid in dict.fromkeys(paper_ids) if pid in self._ids]
        missing = [pid for pid in wanted if pid not in self._records]
        if missing:
            self._records.update((p.paper_id, p) for p in self._store.get_papers(missing))
        return {pid: self._records[pid] for pid in wanted if pid in self._records}

    def __getitem__(self, paper_id: str) -> Paper:
        found = self.fetch([paper_id])
        if paper_id not in found:
            raise KeyError(paper_id)
        return found[paper_id]

    def __contains__(self, paper_id: object) -> bool:
        return paper_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def values(self) -> ValuesView[Paper]:
        return self._all().values()

    def items(self) -> ItemsView[str, Paper]:
        return self._all().items()

    def _all(self) -> dict[str, Paper]:
        if len(self._records) < len(self._ids):
            papers, _ = self._store.all_papers()
            self._records.update((p.paper_id, p) for p in papers if p.paper_id in self._ids)
        return {pid: self._records[pid] for pid in self._order if pid in self._records}


class Retriever:
    """Finds papers for a query; every method returns SearchHits, best first, each paper once."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings)
        self._glossary = glossary(settings.glossary)  # NOTE: read first, so a bad RAG_GLOSSARY fails at once
        self._snapshot, records = open_snapshot(settings, self.store)
        self.papers = Papers(self.store, self._snapshot.ids, self._snapshot.titles, records)
        self._ids = self._snapshot.ids
        self._sentences = self._snapshot.sentences
        self._row = {pid: i for i, pid in enumerate(self._ids)}
        # NOTE: counted once; asking Chroma for counts on every query costs a round trip each (and, embedded, counting
        # the sentences would load their whole index: rag.sentences).
        self._n_chunks = len(self._sentences) if self._sentences is not None else self.store.count_chunks()
        self._likeness: dict[str, float] = {}

    @cached_property
    def embedder(self) -> Embedder:
        return get_embedder(self.settings)

    @cached_property
    def idf(self) -> dict[str, float]:
        """Inverse document frequency of each stemmed content word over the indexed papers."""
        n = len(self.papers) + 1
        return {word: float(np.log(n / (count + 0.5))) for word, count in self._snapshot.word_papers.items()}

    def read_as(self, query: str) -> str:
        """The query with the glossary's terms in place of everyday phrasings ("two graphics cards" → "two GPU"),
        except those made of words the papers use themselves (rag.glossary)."""
        return self._glossary.rewrite(query, self._common)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding for search: the unit mean of the query's as written and as `read_as` reads it."""
        written = embed_query(self.embedder, query)
        read = self.read_as(query)
        if read == query:
            return written
        both = written + embed_query(self.embedder, read)
        return np.asarray(both / max(float(np.linalg.norm(both)), 1e-12), dtype=np.float32)

    def lexical_query(self, query: str) -> str:
        """The query as BM25 reads it: its own words, then the glossary's term for each everyday phrasing."""
        terms = [found[0] for _, _, found in self._glossary.matches(query, self._common)]
        return " ".join([query, *terms])

    def glossed(self, query: str) -> dict[str, str]:
        """The everyday phrasings of the query that search reads as a term, each with its term, for the user to see:
        {"graphics cards": "GPU"}."""
        return {query[start:end]: terms[0] for start, end, terms in self._glossary.matches(query, self._common)}

    def _common(self, word: str) -> bool:
        """Whether a stemmed word is in COMMON_SHARE of the indexed papers or more: an everyday phrasing made of such
        words is the papers' own wording ("training data"), and is not read as a term of the glossary."""
        return self._snapshot.word_papers.get(word, 0) >= COMMON_SHARE * len(self._ids)

    def word_weight(self, word: str) -> float:
        """IDF of a word; words never seen in the corpus weigh like the rarest."""
        return self.idf.get(word, float(np.log(len(self.papers) + 2)))

    @property
    def lexical(self) -> LexicalIndex:
        return self._snapshot.lexical

    @property
    def field_phrases(self) -> frozenset[str]:
        """The glossary's terms as noun phrases, lower-cased ("kv cache", "speculative decoding", "moe")."""
        return self._glossary.phrases

    def indexed_words(self, paper_id: str) -> set[str]:
        """The terms BM25 holds for a paper: its own, and the everyday words for the glossary's terms it uses."""
        return set(self.lexical.fold(self._glossary.with_everyday_terms(indexed_terms(self.papers[paper_id]))))

    def everyday_words(self, paper_id: str) -> set[str]:
        """The words, stemmed, of the everyday phrasings of the glossary's terms a paper uses: "chat" and "run" for a
        paper on LLM inference, as a newcomer asks about it."""
        return set(self._glossary.everyday_terms(indexed_terms(self.papers[paper_id])))

    def likeness(self, paper_id: str) -> float:
        """The mean cosine of a paper to the LIKENESS_OF most alike other papers indexed (0 when there are none). A
        paper of a field the library otherwise lacks, say one history paper among machine-learning ones, ranks first
        for any question of its field, so its relevance (relative to the other papers) says little about whether it
        answers one (rag.tuned.OFF_TOPIC)."""
        if paper_id not in self._likeness:
            _, vectors = self.store.papers_with_vectors([paper_id])
            k = min(LIKENESS_OF + 1, len(self._ids))
            nearest = self.store.query_papers(vectors[0], k) if len(vectors) else []
            others = [s for pid, s in nearest if pid != paper_id][:LIKENESS_OF]
            self._likeness[paper_id] = float(np.mean(others)) if others else 0.0
        return self._likeness[paper_id]

    def writers(self, name: str, most: int = 2) -> list[str]:
        """The papers whose title or abstract writes a name, when it is one term the index holds and at most `most`
        papers write it ("MobileVLM", which only ML-Mamba's abstract does); else none."""
        tokens = self.lexical.tokens(name)
        if len(tokens) != 1 or not 0 < self.lexical.document_frequency.get(tokens[0], 0) <= most:
            return []
        scores = self.bm25_scores(name)
        return [self._ids[i] for i in np.flatnonzero(scores > 0)]

    def written(self, name: str) -> bool:
        """Whether any indexed paper writes a name (rag.text.system_names): whole, or by its parts when its last part
        is no version ("Mamba-Transformer" is; "FlashAttention-3" is not where only "FlashAttention" is written)."""
        frequency = self.lexical.document_frequency
        if any(not frequency.get(w, 0) for w in compounds(name)):  # NOTE: held whole: "MobileNet" is not "mobile"
            return False
        tokens = self.lexical.tokens(name)
        if not tokens or frequency.get(tokens[0], 0):
            return True
        versioned = "-" in name and any(c.isdigit() for c in name.rsplit("-", 1)[1])
        return not versioned and len(tokens) > 1 and all(frequency.get(t, 0) for t in tokens[1:])

    def bm25_scores(self, query: str) -> np.ndarray:
        """BM25 score of every paper (in self._ids order) for the query."""
        if not self._ids:
            return np.zeros(0)
        return self.lexical.scores(query)

    def search(self, query: str, k: int | None = None) -> list[SearchHit]:
        """The k most relevant papers for the query, each with its best sentence."""
        k = k or self.settings.top_k
        scored = self.score(query)
        ranked = scored.ranked()[:k]
        texts = self.sentence_texts(
            {pid: scored.best_sentence[pid] for pid, _ in ranked if pid in scored.best_sentence}
        )
        column = {pid: i for i, pid in enumerate(scored.ids)}
        return [
            SearchHit(
                paper_id=pid,
                title=self.papers.titles[pid],
                score=round(score, 4),
                dense=round(float(scored.features[column[pid], 1]), 4),
                bm25=round(float(scored.features[column[pid], 2]), 4),
                best_sentence=texts.get(pid, ""),
            )
            for pid, score in ranked
            if pid in self.papers
        ]

    def fused_scores(self, query: str) -> dict[str, float]:
        """The ranker's logit of every candidate paper (linear in its standardised signals, unlike the relevance,
        which saturates near 1 for the best few); papers in no pool are absent."""
        scored = self.score(query)
        logits = RANKER.logit(ranker_features(scored.features, query)) if scored.ids else np.zeros(0)
        return {pid: float(r) for pid, r in zip(scored.ids, logits, strict=True)}

    def score(self, query: str, *, many: bool | None = None) -> Scored:
        """Every candidate paper's features and relevance for the query; `many` reads it as asking for every paper
        about it, or not, whatever its wording (`ranker_features`)."""
        if not self._ids or not query.strip():
            return Scored([], np.zeros((0, 3)), np.zeros(0), {})
        vector = self.query_vector(query)
        whole = dict(self.store.query_papers(vector, min(PAPER_POOL, len(self._ids))))
        bm25 = self.bm25_scores(self.lexical_query(query))
        lexical: dict[str, float] = {}
        if bm25.size and float(bm25.max()) > 0:
            top = np.argpartition(-bm25, min(BM25_POOL, bm25.size - 1))[:BM25_POOL]
            lexical = {self._ids[i]: float(bm25[i]) for i in top if bm25[i] > 0}
        best = self.nearest_sentences(vector, CHUNK_POOL, among=[*whole, *lexical])
        ids = [pid for pid in dict.fromkeys([*best, *whole, *lexical]) if pid in self.papers]
        floor_sentence = min((s for s, _ in best.values()), default=0.0)
        floor_whole = min(whole.values(), default=0.0)
        features = np.array(
            [
                (best.get(pid, (floor_sentence, 0))[0], whole.get(pid, floor_whole), lexical.get(pid, 0.0))
                for pid in ids
            ],
            dtype=np.float64,
        ).reshape(len(ids), 3)
        relevance = relevance_of(features, query, many=many)
        return Scored(ids, features, relevance, {pid: position for pid, (_, position) in best.items()})

    def nearest_sentences(
        self, vector: np.ndarray, k: int, among: Sequence[str] | None = None
    ) -> dict[str, tuple[float, int]]:
        """Per paper, the cosine and position of its best sentence among the k sentences nearest the vector: of the
        whole index from the store, or, with the sentences kept beside the snapshot, of the papers `among` (all when
        None; the search's candidates are every paper while the index holds no more than PAPER_POOL)."""
        if self._sentences is not None:
            wanted = (
                range(len(self._ids)) if among is None else dict.fromkeys(self._row[p] for p in among if p in self._row)
            )
            found = self._sentences.nearest(vector, list(wanted), k)
            return {self._ids[row]: best for row, best in found.items()}
        best: dict[str, tuple[float, int]] = {}
        for pid, cid, sim in self.store.query_chunks(vector, min(k, self._n_chunks)):
            if pid not in best or sim > best[pid][0]:
                best[pid] = (sim, int(cid.rsplit("#", 1)[1]))
        return best

    def chunks_of(self, paper_ids: Sequence[str]) -> list[Chunk]:
        """All sentences of these papers with their vectors, in abstract order: from beside the snapshot when kept
        there, else from the store."""
        if self._sentences is None:
            return self.store.chunks_of(paper_ids)
        records = self.papers.fetch(paper_ids)
        chunks = [c for pid, paper in records.items() for c in self._sentences.chunks(self._row[pid], paper)]
        return sorted(chunks, key=lambda c: (c.paper_id, c.position))

    def sentence_texts(self, positions: dict[str, int]) -> dict[str, str]:
        """Per paper, the text of its sentence at the given position."""
        if self._sentences is not None:
            sentences = self._sentences
            return {
                pid: sentences.sentence(sentences.span(self._row[pid])[k])
                for pid, k in positions.items()
                if pid in self._row and k < len(sentences.span(self._row[pid]))
            }
        records = self.papers.fetch(positions)
        ids = {chunk_id(paper, positions[pid]): pid for pid, paper in records.items()}
        return {ids[cid]: text for cid, text in self.store.chunk_texts(list(ids)).items()}


def ranker_features(features: np.ndarray, query: str, *, many: bool | None = None) -> np.ndarray:
    """The ranker's inputs: each signal standardised over its own best NORM_TOP values among the candidates, and the
    same three again for questions asking for many papers ("which papers ..."), which want more of the topic and
    less of one best match.

    NOTE: standardising makes a question's signals comparable whatever their overall level (a newcomer's wording
    gives every paper a middling cosine); taking the statistics over the best few, not every candidate, keeps a
    paper's relevance where it was when unrelated papers join the index."""
    raw = np.asarray(features, dtype=np.float64).reshape(-1, 3)
    if not len(raw):
        return np.zeros((0, 6))
    best = -np.sort(-raw, axis=0)[:NORM_TOP]
    spread = best.std(axis=0)
    z = (raw - best.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return np.hstack([z, float(asks_for_many(query) if many is None else many) * z])


def relevance_of(features: np.ndarray, query: str, *, many: bool | None = None) -> np.ndarray:
    """Relevance in (0, 1) of each candidate: the fitted logistic model over its features."""
    if not len(features):
        return np.zeros(0)
    return RANKER.probabilities(ranker_features(features, query, many=many))
