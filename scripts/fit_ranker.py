"""Fit the second-stage ranker (rag.retrieve.RERANK_WEIGHTS and RERANK_BIAS) on the dev question files.

Each question's first-stage candidates are labelled by its gold papers; a logistic regression learns the blend of
their standardised features. Prints cross-validated figures for the first stage and for the fitted ranker (five
folds over questions, three shuffles; the first stage's best RERANK_KEEP stay first, as in search), then the
constants to put in rag/retrieve.py.

Default files: eval/dev.jsonl, eval/dev_topics.jsonl and eval/dev_paraphrase.jsonl. Never fit on
eval/search_heldout*.jsonl.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import rag.retrieve as retrieve
from rag.api import get_retriever
from rag.config import get_settings
from rag.corpus import normalise_title

C = 1.0  # inverse regularisation strength
FOLDS = 5
SEEDS = (0, 1, 2)

Question = tuple[set[str], list[str], np.ndarray]  # gold ids, candidate ids, candidate features


def standardise(features: np.ndarray) -> np.ndarray:
    spread = features.std(axis=0)
    return (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def fit(questions: Sequence[Question]) -> LogisticRegression:
    """One model over every candidate; each question weighs the same whatever the size of its gold set."""
    xs, ys, weights = [], [], []
    for gold, ids, features in questions:
        labels = np.array([pid in gold for pid in ids])
        xs.append(standardise(features))
        ys.append(labels)
        weights.append(np.full(len(ids), 1 / max(1, labels.sum())))
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    model.fit(np.vstack(xs), np.concatenate(ys), sample_weight=np.concatenate(weights))
    return model


def figures(rankings: Sequence[tuple[set[str], list[str]]]) -> dict[str, float]:
    """hit@5 and MRR of single-paper questions, recall@10 of many-paper ones."""
    out: dict[str, list[float]] = {"hit@5": [], "mrr": [], "recall@10": []}
    for gold, ranked in rankings:
        if len(gold) == 1:
            rank = next((i for i, pid in enumerate(ranked, 1) if pid in gold), None)
            out["hit@5"].append(float(rank is not None and rank <= 5))
            out["mrr"].append(1 / rank if rank else 0.0)
        else:
            out["recall@10"].append(len(gold & set(ranked[:10])) / len(gold))
    return {k: round(float(np.mean(v)), 3) for k, v in out.items() if v}


def reranked(model: LogisticRegression, question: Question) -> list[str]:
    _, ids, features = question
    return [pid for pid, _ in retrieve.ranking(ids, model.decision_function(standardise(features)))]


def main(*paths: str) -> None:
    retriever = get_retriever(get_settings())
    by_title = {normalise_title(p.title): pid for pid, p in retriever.papers.items()}
    files = paths or ("eval/dev.jsonl", "eval/dev_topics.jsonl", "eval/dev_paraphrase.jsonl")
    items = [json.loads(line) for path in files for line in Path(path).read_text().splitlines() if line.strip()]
    questions: list[Question] = []
    for item in (i for i in items if i["gold"] and not i.get("history")):
        ids, features, _ = retriever.candidates(item["question"], retrieve.RERANK_POOL)
        questions.append(({by_title[normalise_title(t)] for t in item["gold"]}, ids, features))

    print("first stage:", figures([(gold, ids) for gold, ids, _ in questions]))
    for seed in SEEDS:
        order = np.random.default_rng(seed).permutation(len(questions))
        rankings = []
        for fold in range(FOLDS):
            held = set(order[fold::FOLDS].tolist())
            model = fit([q for i, q in enumerate(questions) if i not in held])
            rankings += [(questions[i][0], reranked(model, questions[i])) for i in sorted(held)]
        print(f"reranked, cross-validated (shuffle {seed}):", figures(rankings))
    model = fit(questions)
    weights = ", ".join(f"{w:.2f}" for w in model.coef_[0])
    print(f"RERANK_WEIGHTS = ({weights})  # sentence, paper, BM25\nRERANK_BIAS = {model.intercept_[0]:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
