"""How far two blind labellers agree on which papers a review topic must and may cite: the ceiling of the review
targets' measures.

eval/review_relabelled.jsonl holds a second labelling, by a helper that saw only the 168 abstracts and the topics
(never the code, the tool's output or the first labels), of the covered topics of eval/review_medium_dev.jsonl and
eval/review_fresh2.jsonl ("of" names the file). The second labeller's on-topic papers are scored as if they were a
draft's citations, by the measures the review targets use against the first labels: recall of the gold papers and
on-topic precision. With --tool, the tool's cited papers are scored against both labellings too.

Usage: RAG_HOME=/tmp/raghome .venv/bin/python scripts/label_agreement.py [--tool]
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


def _read(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "eval" / name).read_text().splitlines() if line.strip()]


def _score(cited: set[str], labels: dict) -> tuple[float, float]:
    gold = set(labels["gold"])
    on_topic = set(labels["on_topic"]) | gold
    return len(cited & gold) / len(gold), len(cited & on_topic) / max(len(cited), 1)


def main() -> None:
    tool = "--tool" in sys.argv
    if tool:
        from rag.api import get_retriever
        from rag.config import get_settings
        from rag.review import Reviewer

        settings = get_settings()
        reviewer = Reviewer(get_retriever(settings), settings)
    second = _read("review_relabelled.jsonl")
    firsts = {(name, row["topic"]): row for name in {row["of"] for row in second} for row in _read(name)}
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for row in second:
        first = firsts[row["of"], row["topic"]]
        figures = rows.setdefault(row["of"], {})
        figures.setdefault("second labeller's on-topic, against the first", []).append(
            _score(set(row["on_topic"]) | set(row["gold"]), first)
        )
        figures.setdefault("first labeller's on-topic, against the second", []).append(
            _score(set(first["on_topic"]) | set(first["gold"]), row)
        )
        if tool:
            cited = {c.paper.title for c in reviewer.select(row["topic"])[0]}
            figures.setdefault("the tool, against the first", []).append(_score(cited, first))
            figures.setdefault("the tool, against the second", []).append(_score(cited, row))
    for name, figures in rows.items():
        print(f"{name} ({len(next(iter(figures.values())))} topics): recall of gold / on-topic precision")
        for what, pairs in figures.items():
            recall = statistics.mean(r for r, _ in pairs)
            precision = statistics.mean(p for _, p in pairs)
            print(f"  {what}: {recall:.3f} / {precision:.3f}")


if __name__ == "__main__":
    main()
