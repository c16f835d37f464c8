"""Fit rag.tuned.ON_TOPIC and CITE_AT, which decide the papers a review cites, on the dev topics only.

Dev topics: eval/review_dev.jsonl (on-topic labels in eval/review_dev_on_topic.jsonl) and topics 1, 3, 5 and 7
of eval/review.jsonl (labels in eval/review_on_topic.jsonl); held-out topics are never read. Every paper of every
topic is one row: its three signals (rag.review.Reviewer.signals) and whether it is on topic (labelled on-topic or
gold). A logistic regression (scikit-learn, default regularisation) is scored leaving one topic out: for each
threshold, recall is the mean share of gold papers at or above it and precision the mean share of those labelled
on-topic. The rule, fixed before it was run: the threshold with the largest margin over both targets,
min(recall - 0.85, precision - 0.65); ties go to the higher recall. The model is then fitted on every dev topic, and
its constants are printed for rag/tuned.py. scripts/eval_compare_review.py reports the held-out topics.

Usage: RAG_HOME=/tmp/raghome .venv/bin/python scripts/fit_review.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))

from rag import review  # noqa: E402
from rag.api import get_retriever  # noqa: E402
from rag.config import get_settings  # noqa: E402
from rag.tuned import ON_TOPIC  # noqa: E402

THRESHOLDS = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
RECALL, PRECISION = 0.85, 0.65


def _read(name: str) -> list[dict[str, Any]]:
    text = (ROOT / "eval" / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main() -> int:
    from sklearn.linear_model import LogisticRegression

    settings = get_settings()
    reviewer = review.Reviewer(get_retriever(settings), settings)
    titles = np.array([p.title for p in reviewer.papers])
    labels = {str(r["topic"]): set(r["on_topic"]) for r in _read("review_on_topic.jsonl")}
    labels |= {str(r["topic"]): set(r["on_topic"]) for r in _read("review_dev_on_topic.jsonl")}
    topics = _read("review_dev.jsonl") + _read("review.jsonl")[0:8:2]
    x = [reviewer.signals(str(rec["topic"])) for rec in topics]
    gold = [set(rec["gold"]) for rec in topics]
    on = [labels[str(rec["topic"])] | g for rec, g in zip(topics, gold, strict=True)]
    y = [np.isin(titles, sorted(o)) for o in on]

    held_out = []
    for k in range(len(topics)):
        rest = [i for i in range(len(topics)) if i != k]
        fitted = LogisticRegression(max_iter=2000)
        model = fitted.fit(np.vstack([x[i] for i in rest]), np.concatenate([y[i] for i in rest]))
        held_out.append(model.predict_proba(x[k])[:, 1])
    rows = []
    for at in THRESHOLDS:
        cited = [set(titles[p >= at]) for p in held_out]
        recall = statistics.mean(len(c & g) / len(g) for c, g in zip(cited, gold, strict=True))
        precision = statistics.mean(len(c & o) / max(len(c), 1) for c, o in zip(cited, on, strict=True))
        size = statistics.mean(len(c) for c in cited)
        rows.append((min(recall - RECALL, precision - PRECISION), recall, at, precision))
        print(f"P >= {at:.2f}: recall {recall:.3f}, precision {precision:.3f}, {size:.1f} papers cited (one topic out)")
    margin, recall, at, precision = max(rows)
    model = LogisticRegression(max_iter=2000).fit(np.vstack(x), np.concatenate(y))
    print(f"the rule picks CITE_AT = {at}: recall {recall:.3f}, precision {precision:.3f}, margin {margin:.3f}")
    print(f"ON_TOPIC features {ON_TOPIC.features}")
    print(f"  weights {tuple(round(float(w), 3) for w in model.coef_[0])}, bias {round(float(model.intercept_[0]), 3)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
