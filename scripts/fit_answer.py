"""Fit the search ranker and the answerability models (rag/tuned.py) on the dev questions, with cross-validation.

    python scripts/fit_answer.py ranker       # RANKER: relevance of a candidate paper from its three signals
    python scripts/fit_answer.py off-topic    # OFF_TOPIC and REFUSE_AT, in a library that mixes fields (below)
    python scripts/fit_answer.py unreported   # UNREPORTED and PARTIAL_AT, in the bundled library

Data: eval/questions_dev.jsonl (written blind, six styles) and eval/dev_topics.jsonl (many-paper topics). The papers
of eval/questions_heldout.jsonl are held out: never a training row, never a label. Cross-validation: five folds
grouped by paper, so no paper's questions are in both sides of a fold. Every figure is printed per question style,
beside the single signals the ranker fuses. The constants to put in rag/tuned.py are printed last.

The off-topic model is fitted in a library that mixes fields, as a researcher's does: the bundled papers and the 48
papers of other fields in eval/mixed_library.jsonl (written blind in two rounds, with questions each answers in a
specialist's words and in everyday ones, and questions of its field that none answers). The questions of its 24 dev
papers (eval/mixed_dev.jsonl) join the training rows; those of the other 24 (eval/mixed_heldout.jsonl) are held out.
So do 48 machine-learning questions that no bundled paper answers (eval/nearmiss_dev.jsonl, written blind from the
bundled abstracts; 24 more are held out in eval/nearmiss_heldout.jsonl), and, as answerable ones, 49 short questions
for a detail an abstract states in passing ("Which papers use TPUs?", "Anything on satellite imagery?": eval/
keyword_dev.jsonl, written blind and split by paper like the others; eval/keyword_heldout.jsonl holds the other 51),
and 40 questions that name a system no bundled abstract writes ("How many GPUs does PipeDream use?") with 14 that name
ones it does (eval/absent_names_dev.jsonl, eval/named_controls_dev.jsonl, written blind; 20 and 16 more are held out).
The not-reported model reads how much of a question a named paper's abstract covers, which word weights over a
larger library shift (cross-validated it caught 20 of 30 there, 22 in the bundled library), and no mixed question
names a paper, so it is fitted in the bundled library. The answerable questions of eval/dev.jsonl on dev papers join
its rows: most name their paper, as a researcher who knows it does, while the blind set names a paper mostly when its
abstract lacks the answer (fitted on the blind set alone, 12 of dev.jsonl's answerable questions read as "not
reported", not 6):

    RAG_HOME=/tmp/mixed rag ingest rag/data/trending-papers.txt eval/mixed_library.jsonl
    RAG_HOME=/tmp/mixed python scripts/fit_answer.py off-topic
    RAG_HOME=/tmp/bundled rag ingest
    RAG_HOME=/tmp/bundled python scripts/fit_answer.py unreported
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from rag.answer import Answerer, contextualise, resolved
from rag.api import ask, get_retriever
from rag.config import get_settings
from rag.corpus import normalise_title
from rag.models import Turn
from rag.retrieve import Retriever, ranker_features

EVAL = Path(__file__).resolve().parent.parent / "eval"
C = 1.0  # inverse regularisation strength of both models (sklearn's default; 0.1 and 10 gave the same figures)
# The off-topic model's second stage: among 0.1, 1, 10 and 100, 1 and 10 gave the lowest cross-validated log-loss
# (0.2733); with 10 the rarest word's weight stays where it was fitted without a penalty (-3.09 then, -3.17 now).
SECOND_STAGE_C = 10.0
FOLDS = 5
FALSE_REFUSALS = 0.03  # the refusal threshold keeps cross-validated false refusals of answerable questions under this
FALSE_PARTIALS = 0.05  # the partial threshold keeps answerable questions answered as "not reported" under this


# The kinds of question read from the other dev files; eval/dev.jsonl's "unanswerable" mixes off-topic questions with
# ones that name a paper, and its "topic" questions are the many-paper kind, as eval/dev_topics.jsonl's.
_FITTED = {"exact", "figure", "multipart", "paraphrase", "followup", "expert", "lay", "offtopic", "keyword", "named"}


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
    items += [{**item, "file": name} for name in files for item in load(name) if item["kind"] in _FITTED]
    out = []
    for item in items:
        gold = {ids[normalise_title(t)] for t in item["gold"]}
        if item["kind"] == "topic":
            gold -= excluded
        elif gold & excluded and item.get("file") == "dev.jsonl":
            continue  # NOTE: written before the split by paper, it asks about papers of both sides
        elif gold & excluded:
            raise SystemExit(f"a dev question is about a held-out paper: {item['question']}")
        history: list[Turn] = []
        for earlier in item.get("history", []):
            history.append(Turn.after(ask(earlier, retriever.settings, history=history)))
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


def _signals(retriever: Retriever, items: Sequence[dict[str, Any]]) -> tuple[list[dict[str, float]], np.ndarray]:
    """Each question's answerability signals (as Answerer.decide reads them), and whether it names a paper."""
    answerer = Answerer(retriever, retriever.settings)
    signals, named = [], []
    for item in items:
        hits, sources, evidence = answerer.gather(item["question"], retriever.settings.top_k, item["turns"])
        question = resolved(item["question"], item["turns"], retriever.papers.titles)  # NOTE: as Answerer reads it
        about, is_named, also = answerer.about(question, evidence, sources)
        signals.append(answerer.signals(question, hits, evidence, sources, about, is_named, also))
        named.append(is_named)
    return signals, np.array(named)


def _groups(items: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array(
        [sorted(i["gold_ids"])[0] if i["gold_ids"] else f"offtopic-{n % FOLDS}" for n, i in enumerate(items)]
    )


def _holds_the_mixed_papers(retriever: Retriever) -> bool:
    titles = {normalise_title(p.title) for p in retriever.papers.values()}
    return all(normalise_title(str(p["title"])) in titles for p in load("mixed_library.jsonl"))


# The off-topic model's second stage (fit_off_topic): words and names the answering paper or the whole library lacks
SECOND_STAGE = (
    "rarest asked word in the paper",
    "asks about a system name no indexed paper writes",
    "asks about another name no indexed paper writes",
)
_SETS = {
    "mixed_dev.jsonl": "mixed fields",
    "nearmiss_dev.jsonl": "near misses",
    "keyword_dev.jsonl": "keywords",
    "absent_names_dev.jsonl": "absent names",
    "named_controls_dev.jsonl": "named",
}
_SECOND_STAGE_ONLY = {"keyword_dev.jsonl", "absent_names_dev.jsonl", "named_controls_dev.jsonl"}


def _table(kinds: np.ndarray, libraries: np.ndarray, refused: np.ndarray, partial: np.ndarray) -> None:
    for library in dict.fromkeys(libraries):
        for kind in sorted(set(kinds[libraries == library])):
            mask = (kinds == kind) & (libraries == library)
            print(f"{library:>12} {kind:>10}: n={mask.sum():3d} refused={refused[mask].sum():3d} "
                  f"partial={partial[mask].sum():3d} answered={(~refused & ~partial)[mask].sum():3d}")  # fmt: skip


def fit_off_topic() -> None:
    from rag.tuned import OFF_TOPIC

    retriever = get_retriever(get_settings())
    if not _holds_the_mixed_papers(retriever):
        raise SystemExit("the off-topic model is fitted in a library that mixes fields: see this script's docstring")
    items = questions(retriever, list(_SETS))
    signals, is_named = _signals(retriever, items)
    kinds = np.array([item["kind"] for item in items])
    libraries = np.array([_SETS.get(item.get("file", ""), "bundled") for item in items])
    answerable = ~np.isin(kinds, ["offtopic", "unreported"])
    groups = _groups(items)
    # NOTE: two stages. What the question means is fitted on the questions it always was; a question for a detail
    # an abstract states in passing has a low cosine to every abstract, and its 49 rows would reshape that part. Then
    # the weights of what the answering paper or the library lacks (SECOND_STAGE: the question's rarest asked-for
    # word, a name no paper writes) are fitted on every row with the first stage's out-of-fold logit as offset.
    meaning = [f for f in OFF_TOPIC.features if f not in SECOND_STAGE]
    x = np.array([[s[f] for f in meaning] for s in signals])
    fitted_on = np.array([item.get("file") not in _SECOND_STAGE_ONLY for item in items])
    base = np.zeros(len(kinds))
    base[fitted_on] = cross_validated(x[fitted_on], kinds[fitted_on] == "offtopic", groups[fitted_on])
    scaler = StandardScaler().fit(x[fitted_on])
    model = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(x[fitted_on]), kinds[fitted_on] == "offtopic")
    base[~fitted_on] = model.predict_proba(scaler.transform(x[~fitted_on]))[:, 1]
    offset = np.log(np.clip(base, 1e-9, 1.0) / np.clip(1.0 - base, 1e-9, 1.0))
    lacks = np.array([[s[f] for f in SECOND_STAGE] for s in signals])
    y = kinds == "offtopic"

    def second_stage(rows: np.ndarray) -> np.ndarray:
        """The second stage's weights on these rows: log-loss with sklearn's L2 penalty, the offset fixed."""

        def loss(w: np.ndarray) -> float:
            z = offset[rows] + lacks[rows] @ w
            fit = np.logaddexp(0.0, -z) * y[rows] + np.logaddexp(0.0, z) * ~y[rows]
            return float(np.sum(fit) + w @ w / (2 * SECOND_STAGE_C))

        return np.asarray(minimize(loss, np.zeros(len(SECOND_STAGE)), method="L-BFGS-B").x)

    p = np.zeros(len(kinds))
    for train, test in GroupKFold(FOLDS).split(lacks, y, groups):
        p[test] = 1.0 / (1.0 + np.exp(-(offset[test] + lacks[test] @ second_stage(train))))
    weights = second_stage(np.arange(len(kinds)))
    # NOTE: the threshold is chosen on the rows the first stage is fitted on, as before the second stage: short
    # questions for a detail, refused 15 of 49 by the first stage alone, would spend the false-refusal budget
    refuse_at = threshold(np.where(is_named, 0.0, p)[fitted_on], y[fitted_on], answerable[fitted_on], FALSE_REFUSALS)
    print(f"threshold (cross-validated): refuse at {refuse_at:.2f}")
    _table(kinds, libraries, (p >= refuse_at) & ~is_named, np.zeros(len(kinds), dtype=bool))
    print(constants("OFF_TOPIC", meaning, x[fitted_on], y[fitted_on]))
    for name, weight in zip(SECOND_STAGE, weights, strict=True):
        print(f"    and {name!r}: weight {weight:.3f}, mean 0, scale 1")
    print(f"REFUSE_AT = {refuse_at:.2f}")
    off = p[y]
    print(f"P(off-topic), cross-validated: off-topic min {off.min():.2f} median {np.median(off):.2f}; "
          f"answerable max {p[answerable].max():.2f}")  # fmt: skip


def fit_unreported() -> None:
    from rag.tuned import OFF_TOPIC, REFUSE_AT, UNREPORTED

    retriever = get_retriever(get_settings())
    if _holds_the_mixed_papers(retriever):
        raise SystemExit("the not-reported model is fitted in the bundled library: see this script's docstring")
    items = questions(retriever, ["dev.jsonl"])
    signals, is_named = _signals(retriever, items)
    kinds = np.array([item["kind"] for item in items])
    answerable = ~np.isin(kinds, ["offtopic", "unreported"])
    refused = np.array([OFF_TOPIC.probability(s) >= REFUSE_AT for s in signals]) & ~is_named  # as rag/tuned.py has it
    on_topic = kinds != "offtopic"
    x = np.array([[s[f] for f in UNREPORTED.features] for s in signals])
    p = np.zeros(len(kinds))
    p[on_topic] = cross_validated(x[on_topic], kinds[on_topic] == "unreported", _groups(items)[on_topic])
    partial_at = threshold(np.where(refused, 0.0, p), kinds == "unreported", answerable, FALSE_PARTIALS)
    print(f"threshold (cross-validated): partial at {partial_at:.2f}")
    _table(kinds, np.full(len(kinds), "bundled"), refused, (p >= partial_at) & ~refused)
    print(constants("UNREPORTED", UNREPORTED.features, x[on_topic], kinds[on_topic] == "unreported"))
    print(f"PARTIAL_AT = {partial_at:.2f}")


if __name__ == "__main__":
    commands = {"ranker": fit_ranker, "off-topic": fit_off_topic, "unreported": fit_unreported}
    commands[sys.argv[1] if len(sys.argv) > 1 else "ranker"]()
