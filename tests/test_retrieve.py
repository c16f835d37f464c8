"""Search: the first stage's candidates reranked, each paper once, best first, with a relevance in (0, 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rag.retrieve as retrieve
from rag.api import get_retriever
from rag.config import Settings
from rag.corpus import normalise_title
from rag.retrieve import ranking, rerank

DEV_TOPICS = Path(__file__).parent.parent / "eval" / "dev_topics.jsonl"


def test_rerank_prefers_the_candidate_ahead_on_sentence_and_bm25() -> None:
    features = np.array([[0.40, 0.40, 2.0], [0.70, 0.50, 9.0], [0.50, 0.45, 5.0]])  # sentence, paper, BM25
    relevance = rerank(features)
    assert list(np.argsort(-relevance)) == [1, 2, 0]
    assert ((relevance > 0) & (relevance < 1)).all()


def test_rerank_reads_features_relative_to_the_pool() -> None:
    features = np.array([[0.40, 0.40, 2.0], [0.70, 0.50, 9.0], [0.50, 0.45, 5.0]])
    scaled = features * np.array([1.0, 1.0, 100.0]) + np.array([0.2, 0.0, 0.0])
    assert np.allclose(rerank(features), rerank(scaled))


def test_rerank_of_a_constant_feature_or_an_empty_pool_is_finite() -> None:
    assert np.isfinite(rerank(np.array([[0.5, 0.5, 0.0], [0.6, 0.5, 0.0]]))).all()
    assert rerank(np.zeros((0, 3))).size == 0


def test_ranking_keeps_the_first_stages_best_and_scores_fall_with_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrieve, "RERANK_KEEP", 2)
    ranked = ranking(["a", "b", "c", "d"], np.array([0.2, 0.9, 0.5, 0.95]))  # pool in first-stage order
    assert ranked == [("a", 0.95), ("b", 0.95), ("d", 0.95), ("c", 0.5)]
    assert ranking([], np.zeros(0)) == []


def test_search_ranks_each_paper_once_best_first_beyond_the_rerank_pool(bundled: Settings) -> None:
    k = retrieve.RERANK_POOL + 20
    hits = get_retriever(bundled).search("distributed training of mixture-of-experts models", k=k)
    assert len(hits) == k == len({h.paper_id for h in hits})
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] < scores[0] < 1
    assert all(h.best_sentence for h in hits[:10])


def test_reranking_finds_more_of_each_topic_than_the_first_stage(bundled: Settings) -> None:
    """The fitted constants against the questions they were fitted on: a regression check, not a quality figure."""
    retriever = get_retriever(bundled)
    by_title = {normalise_title(p.title): pid for pid, p in retriever.papers.items()}
    items = [json.loads(line) for line in DEV_TOPICS.read_text().splitlines() if line.strip()]
    reranked, first = [], []
    for item in items:
        gold = {by_title[normalise_title(t)] for t in item["gold"]}
        fused = retriever.fused_scores(item["question"])
        first.append(len(gold & set(sorted(fused, key=fused.__getitem__, reverse=True)[:10])) / len(gold))
        reranked.append(len(gold & {h.paper_id for h in retriever.search(item["question"], k=10)}) / len(gold))
    assert np.mean(reranked) > np.mean(first) + 0.01
