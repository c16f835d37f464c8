"""Choose rag/review.py's CITE_FRACTION, and estimate how the choice does on topics it was not chosen on.

The rule, fixed before it was run: over a grid of fractions, take the one with the highest mean recall of the
gold papers among the cited ones, among those whose mean precision against the on-topic labels
(eval/review_on_topic.jsonl) is at least 0.60; ties go to the higher precision; if none reaches 0.60, the most
precise. Leave-one-topic-out over all topics of eval/review.jsonl and eval/review_fresh.jsonl: each topic is
scored at the fraction the rule picks on the other topics, so every figure in the "cross-validated" line comes
from a topic that did not take part in choosing its own fraction. The last line is the rule on all topics:
the fraction to ship.

Usage: RAG_HOME=/tmp/raghome .venv/bin/python scripts/tune_review.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))

from rag.api import get_retriever  # noqa: E402
from rag.config import get_settings  # noqa: E402
from rag.review import Reviewer  # noqa: E402

GRID = [round(0.30 + 0.025 * i, 3) for i in range(13)]  # 0.30 … 0.60
PRECISION = 0.60


def _topics(name: str) -> list[dict[str, object]]:
    text = (ROOT / "eval" / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def pick(figures: dict[float, list[tuple[float, float]]], topics: list[int]) -> float:
    """The rule: the grid fraction with the best mean recall at mean precision >= PRECISION over these topics."""

    def means(fraction: float) -> tuple[float, float]:
        rows = [figures[fraction][t] for t in topics]
        return statistics.mean(r for r, _ in rows), statistics.mean(p for _, p in rows)

    feasible = [f for f in GRID if means(f)[1] >= PRECISION]
    if not feasible:
        return max(GRID, key=lambda f: means(f)[1])
    return max(feasible, key=lambda f: means(f))


def main() -> int:
    settings = get_settings()
    reviewer = Reviewer(get_retriever(settings), settings)
    labels = {rec["topic"]: set(rec["on_topic"]) for rec in _topics("review_on_topic.jsonl")}
    topics = _topics("review.jsonl") + _topics("review_fresh.jsonl")
    figures: dict[float, list[tuple[float, float]]] = {f: [] for f in GRID}
    for rec in topics:
        gold = set(rec["gold"])
        fit = labels[rec["topic"]] | gold
        for fraction in GRID:
            cited = {c.paper.title for c in reviewer.select(str(rec["topic"]), fraction)[0]}
            figures[fraction].append((len(cited & gold) / len(gold), len(cited & fit) / max(len(cited), 1)))
    everyone = list(range(len(topics)))
    for fraction in GRID:
        rows = figures[fraction]
        recall, precision = statistics.mean(r for r, _ in rows), statistics.mean(p for _, p in rows)
        print(f"fraction {fraction:.3f}: recall {recall:.3f}, precision {precision:.3f} (all {len(rows)} topics)")
    held_out = []
    for t in everyone:
        fraction = pick(figures, [o for o in everyone if o != t])
        held_out.append((fraction, *figures[fraction][t]))
    recall = statistics.mean(r for _, r, _ in held_out)
    precision = statistics.mean(p for _, _, p in held_out)
    chosen = sorted({f for f, _, _ in held_out})
    print(f"cross-validated (leave one topic out): recall {recall:.3f}, precision {precision:.3f}; fractions {chosen}")
    print(f"the rule on all topics picks {pick(figures, everyone):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
