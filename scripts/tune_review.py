"""Choose rag/review.py's relevance weights and CITE_FRACTION on the dev topics; held-out topics are never read.

Dev topics: eval/review_dev.jsonl (on-topic labels in eval/review_dev_on_topic.jsonl), topics 1, 3, 5 and 7
of eval/review.jsonl (labels in eval/review_on_topic.jsonl) and, since 2026-11-30 (ninth session), the dev half of
eval/review_short.jsonl (the first, third, …; labels inline): 34 topics. The rule, fixed before it was first run:
over the grid, take the pair with the largest margin over both targets, min(recall - RECALL, precision - PRECISION),
where recall is the mean share of gold papers cited and precision the mean share of cited papers labelled on-topic;
ties go to the higher recall. The targets were issue 4's (0.80, 0.60) until the ninth session; they are issue 15's
now. scripts/eval_compare_review.py then reports the held-out topics. Since the eighteenth session the dev topics
include the medium-length ones, eval/review_medium_heldout.jsonl (held out once in the seventeenth session, dev
since) and eval/review_medium_dev.jsonl (its covered topics; held out once, then dev): 60 topics; and the grid
includes HEAD_WEIGHT, how much more the topic's subject counts than its setting; since the nineteenth,
FEEDBACK_FRACTION, which papers pseudo-relevance feedback reads (0 reads the best 10, as it did before).

Usage: RAG_HOME=/tmp/raghome .venv/bin/python scripts/tune_review.py [--head 0.5,1] [--search 0.5] [--feedback 0.7]
       [--fractions 0.45]
(each a comma-separated part of the grid, to run it in pieces)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))

from rag import review  # noqa: E402
from rag.api import get_retriever  # noqa: E402
from rag.config import get_settings  # noqa: E402

HEAD_WEIGHTS = [0.0, 0.5, 1.0]
FEEDBACK_FRACTIONS = [0.0, 0.6, 0.7, 0.8]
SEARCH_WEIGHTS = [0.25, 0.5, 0.75]
FRACTIONS = [0.4, 0.425, 0.45, 0.475, 0.5]
RECALL, PRECISION = 0.85, 0.65


def _read(name: str) -> list[dict[str, Any]]:
    text = (ROOT / "eval" / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _grid(text: str | None, default: list[float]) -> list[float]:
    return [float(v) for v in text.split(",")] if text else default


def main() -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--head", "--search", "--feedback", "--fractions"):
        parser.add_argument(flag)
    args = parser.parse_args()
    settings = get_settings()
    reviewer = review.Reviewer(get_retriever(settings), settings)
    labels = {str(r["topic"]): set(r["on_topic"]) for r in _read("review_on_topic.jsonl")}
    labels |= {str(r["topic"]): set(r["on_topic"]) for r in _read("review_dev_on_topic.jsonl")}
    topics = _read("review_dev.jsonl") + _read("review.jsonl")[0:8:2] + _read("review_short.jsonl")[0::2]
    topics += _read("review_medium_heldout.jsonl") + [r for r in _read("review_medium_dev.jsonl") if r["gold"]]
    rows = []
    grid = itertools.product(
        _grid(args.head, HEAD_WEIGHTS),
        _grid(args.search, SEARCH_WEIGHTS),
        _grid(args.feedback, FEEDBACK_FRACTIONS),
        _grid(args.fractions, FRACTIONS),
    )
    for head, weight, feedback, fraction in grid:
        review.HEAD_WEIGHT, review.SEARCH_WEIGHT, review.FEEDBACK_FRACTION = head, weight, feedback
        recalls, precisions = [], []
        for rec in topics:
            gold = set(rec["gold"])
            fit = labels.get(str(rec["topic"]), set()) | set(rec.get("on_topic", ())) | gold
            cited = {c.paper.title for c in reviewer.select(str(rec["topic"]), fraction)[0]}
            recalls.append(len(cited & gold) / len(gold))
            precisions.append(len(cited & fit) / max(len(cited), 1))
        recall, precision = statistics.mean(recalls), statistics.mean(precisions)
        rows.append((min(recall - RECALL, precision - PRECISION), recall, head, weight, feedback, fraction, precision))
        print(
            f"head weight {head:.2f}, search weight {weight:.2f}, feedback fraction {feedback:.2f}, "
            f"fraction {fraction:.3f}: recall {recall:.3f}, precision {precision:.3f}",
            flush=True,
        )
    margin, recall, head, weight, feedback, fraction, precision = max(rows)
    print(
        f"the rule picks head weight {head:.2f}, search weight {weight:.2f}, feedback fraction {feedback:.2f} "
        f"and fraction {fraction:.3f}"
    )
    print(f"on the {len(topics)} dev topics: recall {recall:.3f}, precision {precision:.3f}, margin {margin:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
