"""Measure comparisons and review drafts: comparison request files and the review topic files.

Compare (`rag.evaluate.evaluate_comparisons`, what `rag eval` runs on a file of requests), per request form: named
papers found, unknown names reported, papers wrongly added, phrases in the right cell and row, a user-added column,
cell length, cut cells. Review: recall of the gold (must-cite)
papers among the cited papers (the headline figure; also among the papers found relevant), and precision of
the cited papers two ways: against the on-topic labels of eval/review_on_topic.jsonl (the target's measure:
on-topic papers a review could cite, a superset of gold) and, stricter, against gold alone. Means are given over
the tuning half of eval/review.jsonl (topics 1, 3, 5, 7: rag/review.py's constants were tuned on these), the
held-out topics (2, 4, 6, 8 of eval/review.jsonl and all of eval/review_fresh.jsonl, written and labelled
later, blind to the tool's output), the short topics of eval/review_short.jsonl (40 of 2 to 5 words, as a researcher
types them, written and labelled blind from the abstracts alone, gold and on-topic papers inline; the first, third, …
are dev, the second, fourth, … held out), the medium-length topics (5 to 10 words; dev:
eval/review_medium_heldout.jsonl and eval/review_medium_dev.jsonl, each held out once before it became dev; held out:
eval/review_medium_heldout2.jsonl and eval/review_medium_heldout3.jsonl, all written and labelled blind; the last three
hold two topics each that no paper is about, reported as refused or not) and all topics. Held-out review topics are
listed one by one only with --verbose; otherwise they count only in the means.

Usage: RAG_HOME=/tmp/raghome .venv/bin/python scripts/eval_compare_review.py [--compare FILE ...] [--no-review]
       [--json] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT))

from rag import api  # noqa: E402
from rag.config import get_settings  # noqa: E402
from rag.evaluate import evaluate_comparisons  # noqa: E402
from rag.export import render_report  # noqa: E402


def _topics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def eval_review(
    tuning: Path, fresh: Path, on_topic: Path, short: Path, medium: dict[str, list[Path]], verbose: bool
) -> dict[str, Any]:
    settings = get_settings()
    labels = {rec["topic"]: set(rec["on_topic"]) for rec in _topics(on_topic)}
    long = [*_topics(tuning), *_topics(fresh)]
    halves = ["tuned" if i < 8 and i % 2 == 0 else "held_out" for i in range(len(long))]
    shorts = _topics(short) if short.is_file() else []
    halves += ["short_dev" if i % 2 == 0 else "short_held_out" for i in range(len(shorts))]
    mediums = [(rec, half) for half, paths in medium.items() for path in paths for rec in _topics(path)]
    off_topic = {}  # NOTE: a medium set's topics no paper is about (no gold): refused or not
    for rec, _ in (m for m in mediums if not m[0]["gold"]):
        off_topic[rec["topic"]] = bool(api.review(rec["topic"], settings).refusal)
    mediums = [m for m in mediums if m[0]["gold"]]
    halves += [half for _, half in mediums]
    per = []
    for rec, half in zip([*long, *shorts, *(rec for rec, _ in mediums)], halves, strict=True):
        draft = api.review(rec["topic"], settings)
        gold = set(rec["gold"])
        fit = set(rec.get("on_topic", ())) | labels.get(rec["topic"], gold) | gold
        cited = {r.title for r in draft.references}
        relevant = {c.title for c in draft.coverage.relevant}
        row = {
            "topic": rec["topic"],
            "half": half,
            "gold": len(gold),
            "cited": len(cited),
            "recall_cited": round(len(cited & gold) / len(gold), 3),
            "recall_relevant": round(len(relevant & gold) / len(gold), 3),
            "precision_on_topic": round(len(cited & fit) / max(len(cited), 1), 3),
            "precision_gold": round(len(cited & gold) / max(len(cited), 1), 3),
            "themes": len(draft.sections) - 1,
        }
        per.append(row)
        if verbose:
            print(json.dumps(row), "missed:", sorted(gold - cited), "off-topic:", sorted(cited - fit), file=sys.stderr)
    groups = {name: [r for r in per if r["half"] == name] for name in dict.fromkeys(halves)}
    return {"topics": len(per), "means": {name: _means(rows) for name, rows in {**groups, "all": per}.items()},
            "per_topic": per, "off_topic_refused": off_topic}  # fmt: skip


def _means(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("recall_cited", "recall_relevant", "precision_on_topic", "precision_gold")
    return {key: round(statistics.mean(r[key] for r in rows), 3) if rows else 0.0 for key in keys}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--compare", nargs="+", default=[str(ROOT / "eval" / "compare_dev.jsonl")])
    parser.add_argument("--no-review", action="store_true", help="measure comparisons only")
    parser.add_argument("--review", default=str(ROOT / "eval" / "review.jsonl"), help="tuning and held-out topics")
    parser.add_argument("--fresh", default=str(ROOT / "eval" / "review_fresh.jsonl"), help="held-out topics")
    parser.add_argument("--on-topic", default=str(ROOT / "eval" / "review_on_topic.jsonl"), help="on-topic labels")
    parser.add_argument("--short", default=str(ROOT / "eval" / "review_short.jsonl"), help="short topics, labelled")
    parser.add_argument(
        "--medium-dev",
        nargs="*",
        default=[str(ROOT / "eval" / f"review_medium_{x}.jsonl") for x in ("heldout", "dev")],
        help="medium-length, dev",
    )
    held_out = [str(ROOT / "eval" / f"review_medium_heldout{n}.jsonl") for n in (2, 3)]
    parser.add_argument("--medium-held-out", nargs="*", default=held_out, help="medium-length topics, held out")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument(
        "--verbose", action="store_true", help="per-item details to stderr, and each held-out review topic's figures"
    )
    args = parser.parse_args()
    settings = get_settings()
    compared = [evaluate_comparisons(Path(x), settings) for x in args.compare]
    report: dict[str, Any] = {"compare": [c.model_dump() for c in compared]}
    if not args.no_review:
        short = Path(args.short)
        medium = {"medium_dev": [Path(x) for x in args.medium_dev],
                  "medium_held_out": [Path(x) for x in args.medium_held_out]}  # fmt: skip
        report["review"] = eval_review(
            Path(args.review), Path(args.fresh), Path(args.on_topic), short, medium, args.verbose
        )
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    console = Console(soft_wrap=False, markup=False, highlight=False)
    for comparison in compared:
        console.print(render_report(comparison, console.width))
    if "review" not in report:
        return 0
    r = report["review"]
    print(f"review ({r['topics']} topics)")
    print(f"  {'topic':64s} half      gold cited recall(cited) recall(relevant) precision(on-topic) precision(gold)")
    for i, t in enumerate(r["per_topic"], 1):
        if "held_out" in t["half"] and not args.verbose:
            continue  # NOTE: held-out topics show only in the means, so that no one tunes on one by sight
        half = t["half"].replace("short_held_out", "short_ho").replace("medium_dev", "med_dev")
        print(f"  {i:2d} {t['topic'][:61]:61s} {half:8s} {t['gold']:4d} {t['cited']:5d} {t['recall_cited']:13.2f} "
              f"{t['recall_relevant']:16.2f} {t['precision_on_topic']:19.2f} {t['precision_gold']:15.2f}")  # fmt: skip
    for name, m in r["means"].items():
        count = sum(1 for t in r["per_topic"] if name == "all" or t["half"] == name)
        label = f"mean, {name.replace('_', '-')} topics ({count})"
        print(f"  {label:64s} {'':19s} {m['recall_cited']:13.2f} {m['recall_relevant']:16.2f} "
              f"{m['precision_on_topic']:19.2f} {m['precision_gold']:15.2f}")  # fmt: skip
    refused = r["off_topic_refused"]
    print(f"  topics no paper is about (medium sets): {sum(refused.values())} of {len(refused)} refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
