"""Sweep the fusion weights on the dev question files and print retrieval figures for each setting.

Default files: eval/dev.jsonl and eval/dev_topics.jsonl. Never tune on eval/search_heldout.jsonl.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import rag.retrieve as retrieve
from rag.api import get_retriever
from rag.config import get_settings
from rag.corpus import normalise_title

DENSE = [0.4, 0.45, 0.5, 0.55]
SENTENCE = [0.7, 0.8, 0.9, 1.0]


def main(*paths: str) -> None:
    retriever = get_retriever(get_settings())
    by_title = {normalise_title(p.title): pid for pid, p in retriever.papers.items()}
    files = paths or ("eval/dev.jsonl", "eval/dev_topics.jsonl")
    items = [json.loads(line) for path in files for line in Path(path).read_text().splitlines() if line.strip()]
    items = [i for i in items if i["gold"] and not i.get("history")]
    for dense_w, sent_w in itertools.product(DENSE, SENTENCE):
        retrieve.SENTENCE_WEIGHT = sent_w
        figures: dict[str, list[float]] = {"hit@5": [], "mrr": [], "recall@10": []}
        for item in items:
            gold = {by_title[normalise_title(t)] for t in item["gold"]}
            ranked = [h.paper_id for h in retriever.search(item["question"], k=10, dense_weight=dense_w)]
            if len(gold) == 1:
                rank = next((i for i, pid in enumerate(ranked, 1) if pid in gold), None)
                figures["hit@5"].append(float(rank is not None and rank <= 5))
                figures["mrr"].append(1 / rank if rank else 0.0)
            else:
                figures["recall@10"].append(len(gold & set(ranked)) / len(gold))
        row = {k: round(sum(v) / len(v), 3) for k, v in figures.items()}
        print(f"dense_weight={dense_w} sentence_weight={sent_w} {row}")


if __name__ == "__main__":
    main(*sys.argv[1:])
