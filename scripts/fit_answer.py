"""Fit the search ranker and the answerability model (rag/tuned.py) on the dev questions, with cross-validation.

    python scripts/fit_answer.py ranker          # RANKER: relevance of a candidate paper from its three signals
    python scripts/fit_answer.py answerability   # ANSWERABILITY and its thresholds (uses the RANKER in rag/tuned.py)

Data: eval/questions_dev.jsonl (written blind, six styles) and eval/dev_topics.jsonl (many-paper topics). The papers
of eval/questions_heldout.jsonl are held out: never a training row, never a label.

Answerability is fitted in a library that mixes fields, as a researcher's does: the bundled papers and the 48 papers
of other fields in eval/mixed_library.jsonl (written blind in two rounds, with questions each answers in a
specialist's words and in everyday ones, and questions of its field that none answers). The questions of its 24 dev
papers (eval/mixed_dev.jsonl) join the training rows; those of the other 24 (eval/mixed_heldout.jsonl) are held out.
Index that library first:

    RAG_HOME=/tmp/mixed rag ingest rag/data/trending-papers.txt eval/mixed_library.jsonl
    RAG_HOME=/tmp/mixed python scripts/fit_answer.py answerability Cross-validation: five folds
grouped by paper, so no paper's questions are in both sides of a fold. Every figure is printed per question style,
beside the single signals the ranker fuses. The constants to put in rag/tuned.py are printed last.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from rag.answer import Answerer, contextualise
from rag.api import ask, get_retriever
from rag.config import get_settings
from rag.corpus import normalise_title
from rag.models import Turn
from rag.retrieve import Retriever, ranker_features

EVAL = Path(__file__).resolve().parent.parent / "eval"
C = 1.0  # inverse regularisation strength of both models (sklearn's default; 0.1 and 10 gave the same figures)
FOLDS = 5
FALSE_REFUSALS = 0.03  # the refusal threshold keeps cross-validated false refusals of answerable questions under this
FALSE_PARTIALS = 0.05  # the partial threshold keeps answerable questions answered as "not reported" under this


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (EVAL / name).read_text().splitlines() if line.strip()]


def held_out(retriever: Retriever) -> set[str]:
    ids = _ids(retriever)
    return {ids[normalise_title(t)] for item in load("questions_heldout.jsonl") for t in item["gold"]}


def _ids(retriever: Retriever) -> dict[str, str]:
    return {normalise_title(p.title): pid for pid, p in retriever.papers.items()}


def questions(retriever: Retriever, files: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Dev questions (and those of the other dev files named) with gold ids, follow-ups turned into their retrieval
    query, held-out papers' topics trimmed."""
    ids, excluded = _ids(retriever), held_out(retriever)
    items = load("questions_dev.jsonl") + [{**t, "kind": "topic", "history": []} for t in load("dev_topics.jsonl")]
    items += [{**item, "file": name} for name in files for item in load(name)]
    out = []
    for item in items:
        gold = {ids[normalise_title(t)] for t in item["gold"]}
        if item["kind"] == "topic":
            gold -= excluded
        elif gold & excluded:
            raise SystemExit(f"a dev question is about a held-out paper: {item['question']}")
        history = []
        for earlier in item.get("history", []):
            prior = ask(earlier, retriever.settings)
            history.append(Turn(earlier, [c.paper_id for c in prior.citations] + [h.paper_id for h in prior.related]))
        query, _ = contextualise(item["question"], history)
        out.append({**item, "gold_ids": gold, "query": query, "turns": history})
    return out


# --- ranker ------------------------------------------------------------------------------------------


def figures(rankings: Sequence[tuple[dict[str, Any], list[str]]]) -> dict[str, str]:
    """Per style: hit@5/MRR of single-paper questions, recall@10 of topics."""
    by: dict[str, list[float]] = defaultdict(list)
    mrr: dict[str, list[float]] = defaultdict(list)
    for item, ranked in rankings:
        gold = item["gold_ids"]
        if item["kind"] == "topic":
            by["topic"].append(len(gold & set(ranked[:10])) / max(len(gold), 1))
        elif len(gold) == 1 and item["kind"] != "offtopic":
            rank = next((i for i, pid in enumerate(ranked, 1) if pid in gold), None)
            by[item["kind"]].append(float(rank is not None and rank <= 5))
            mrr[item["kind"]].append(1 / rank if rank else 0.0)
    return {
        kind: f"{np.mean(v):.3f}" + (f"/{np.mean(mrr[kind]):.3f}" if kind in mrr else "")
        for kind, v in sorted(by.items())
    }


def fit_ranker() -> None:
    retriever = get_retriever(get_settings())
    excluded = held_out(retriever)
    items = [q for q in questions(retriever) if q["gold_ids"]]
    scored = [retriever.score(q["query"]) for q in items]
    xs, ys, ws, groups, rows, trainable = [], [], [], [], [], []
    for n, (item, s) in enumerate(zip(items, scored, strict=True)):
        labels = np.array([pid in item["gold_ids"] for pid in s.ids])
        keep = np.array([pid not in excluded for pid in s.ids])
        xs.append(ranker_features(s.features, item["query"]))
        ys.append(labels)
        ws.append(np.full(len(s.ids), 1 / max(1, int(labels.sum()))))
        groups += [sorted(item["gold_ids"])[0]] * len(s.ids)
        rows += [n] * len(s.ids)
        trainable.append(keep)
    x, y, w, g, r = np.vstack(xs), np.concatenate(ys), np.concatenate(ws), np.array(groups), np.array(rows)
    t = np.concatenate(trainable)  # held-out papers are ranked, never trained on

    def ranked_by(score: Callable[[int], np.ndarray]) -> list[tuple[dict[str, Any], list[str]]]:
        return [(item, [s.ids[i] for i in np.argsort(-score(n), kind="stable")]) for n, (item, s) in
                enumerate(zip(items, scored, strict=True))]  # fmt: skip

    for column, name in enumerate(("best sentence", "whole abstract", "BM25")):
        print(f"{name:>16}:", figures(ranked_by(lambda n, c=column: scored[n].features[:, c])))
    oof = np.zeros(len(y))
    for train, test in GroupKFold(FOLDS).split(x, y, g):
        train = train[t[train]]
        model = LogisticRegression(C=C, max_iter=2000)
        model.fit(x[train], y[train], sample_weight=w[train])
        oof[test] = model.decision_function(x[test])
    cv = ranked_by(lambda n: oof[r == n])
    print(f"{'fused (CV)':>16}:", figures(cv))
    model = LogisticRegression(C=C, max_iter=2000).fit(x[t], y[t], sample_weight=w[t])
    print(f"{'rag/tuned.py':>16}:", figures(ranked_by(lambda n: retriever.score(items[n]["query"]).relevance)))
    weights = ", ".join(f"{v:.2f}" for v in model.coef_[0])
    print(f"RANKER weights=({weights}), bias={model.intercept_[0]:.2f}")


# --- answerability ----------------------------------------------------------------------------------


def cross_validated(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Out-of-fold P(y) of each row; folds grouped by paper."""
    out = np.zeros(len(y))
    for train, test in GroupKFold(FOLDS).split(x, y, groups):
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(x[train]), y[train])
        out[test] = model.predict_proba(scaler.transform(x[test]))[:, 1]
    return out


def threshold(score: np.ndarray, wanted: np.ndarray, wrong: np.ndarray, limit: float) -> float:
    """The middle of the thresholds that catch the most `wanted` rows while catching at most `limit` of the `wrong`
    ones (and, among those, the fewest)."""
    grid = np.round(np.arange(0.02, 0.99, 0.01), 2)
    gain = [((score >= t) & wanted).sum() - ((score >= t) & wrong).sum() / 1000
            if ((score >= t) & wrong).sum() <= limit * wrong.sum() else -np.inf for t in grid]  # fmt: skip
    top = np.flatnonzero(np.asarray(gain) == max(gain))
    return float(grid[top[len(top) // 2]])


def constants(name: str, features: Sequence[str], x: np.ndarray, y: np.ndarray) -> str:
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(x), y)

    def tup(values: Any) -> str:
        return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"

    return (f"{name} weights={tup(model.coef_[0])} bias={model.intercept_[0]:.3f}\n"
            f"    mean={tup(scaler.mean_)} scale={tup(scaler.scale_)}  # {', '.join(features)}")  # fmt: skip


def fit_answerability() -> None:
    from rag.tuned import OFF_TOPIC, UNREPORTED

    retriever = get_retriever(get_settings())
    titles = {normalise_title(p.title) for p in retriever.papers.values()}
    if any(normalise_title(str(p["title"])) not in titles for p in load("mixed_library.jsonl")):
        raise SystemExit("answerability is fitted in a library that mixes fields: see this script's docstring")
    answerer = Answerer(retriever, retriever.settings)
    items = questions(retriever, ["mixed_dev.jsonl"])
    signals, named, groups = [], [], []
    for item in items:
        hits, sources, evidence = answerer.gather(item["question"], retriever.settings.top_k, item["turns"])
        source = answerer.named_source(item["question"], sources)
        source = source if source in (1, evidence[0].source) else None  # as Answerer.decide
        signals.append(
            answerer.signals(
                item["question"], hits, evidence, sources, source or evidence[0].source, source is not None
            )
        )
        named.append(source is not None)
        groups.append(sorted(item["gold_ids"])[0] if item["gold_ids"] else f"offtopic-{len(groups) % FOLDS}")
    kinds = np.array([item["kind"] for item in items])
    mixed = np.array([item.get("file") == "mixed_dev.jsonl" for item in items])
    g, is_named = np.array(groups), np.array(named)
    answerable = ~np.isin(kinds, ["offtopic", "unreported"])

    x_off = np.array([[s[f] for f in OFF_TOPIC.features] for s in signals])
    p_off = cross_validated(x_off, kinds == "offtopic", g)
    refuse_at = threshold(np.where(is_named, 0.0, p_off), kinds == "offtopic", answerable, FALSE_REFUSALS)
    refused = (p_off >= refuse_at) & ~is_named

    # NOTE: the mixed library's questions were written for the off-topic decision (none names a paper to ask it for
    # what it lacks), so UNREPORTED reads the bundled library's
    on_topic = (kinds != "offtopic") & ~mixed
    x_unr = np.array([[s[f] for f in UNREPORTED.features] for s in signals])
    p_unr = np.zeros(len(kinds))
    p_unr[on_topic] = cross_validated(x_unr[on_topic], kinds[on_topic] == "unreported", g[on_topic])
    partial_at = threshold(np.where(refused, 0.0, p_unr), kinds == "unreported", answerable & ~mixed, FALSE_PARTIALS)
    partial = (p_unr >= partial_at) & ~refused
    print(f"thresholds (cross-validated): refuse at {refuse_at:.2f}, partial at {partial_at:.2f}")
    for library, rows in (("bundled", ~mixed), ("mixed fields", mixed)):
        for kind in sorted(set(kinds[rows])):
            mask = (kinds == kind) & rows
            print(f"{library:>12} {kind:>10}: n={mask.sum():3d} refused={refused[mask].sum():3d} "
                  f"partial={partial[mask].sum():3d} answered={(~refused & ~partial)[mask].sum():3d}")  # fmt: skip
    print(constants("OFF_TOPIC", OFF_TOPIC.features, x_off, kinds == "offtopic"))
    print(constants("UNREPORTED", UNREPORTED.features, x_unr[on_topic], kinds[on_topic] == "unreported"))
    print(f"REFUSE_AT = {refuse_at:.2f}\nPARTIAL_AT = {partial_at:.2f}")
    off = p_off[kinds == "offtopic"]
    print(f"P(off-topic), cross-validated: off-topic min {off.min():.2f} median {np.median(off):.2f}; "
          f"answerable max {p_off[answerable].max():.2f}")  # fmt: skip


if __name__ == "__main__":
    {"ranker": fit_ranker, "answerability": fit_answerability}[sys.argv[1] if len(sys.argv) > 1 else "ranker"]()
