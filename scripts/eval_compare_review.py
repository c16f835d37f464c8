"""Measure comparisons and review drafts on eval/compare.jsonl and the review topic files.

Compare: name-resolution accuracy, unresolved detection, results-cell figure hit rate, median cell words,
fraction of informative cells with a citation and a verbatim quote. Review: recall of the gold (must-cite)
papers among the cited papers (the headline figure; also among the papers found relevant), and precision of
the cited papers two ways: against the on-topic labels of eval/review_on_topic.jsonl (the target's measure:
on-topic papers a review could cite, a superset of gold) and, stricter, against gold alone. Means are given over
the tuning half of eval/review.jsonl (topics 1, 3, 5, 7: rag/review.py's constants were tuned on these), the
held-out topics (2, 4, 6, 8 of eval/review.jsonl and all of eval/review_fresh.jsonl, written and labelled
later, blind to the tool's output) and all topics.

Usage: RAG_HOME=/tmp/raghome .venv/bin/python scripts/eval_compare_review.py [--json] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT))

from rag import api  # noqa: E402
from rag.compare import DEFAULT_ASPECTS, NOT_STATED, Comparison  # noqa: E402
from rag.config import get_settings  # noqa: E402
from rag.text import content_words, plain  # noqa: E402

RESULTS = "evaluation and reported results"


def _squash(text: str) -> str:
    return re.sub(r"[\s×]+|times", "", text.lower().replace("×", "x"))


def _verbatim(quote: str, abstract: str) -> bool:
    flat = " ".join(abstract.split())
    return bool(quote) and all(" ".join(q.split()) in flat for q in quote.split(" … "))


def _found(fact: str, text: str) -> bool:
    """A fact phrase is in a cell when the cell holds it verbatim or holds 80% of its content words."""
    fact = plain(fact)  # NOTE: phrases were copied from the abstracts as written, LaTeX and all
    if _squash(fact) in _squash(text):
        return True
    words = content_words(fact)
    return bool(words) and len(words & content_words(text)) >= 0.8 * len(words)


def _facts(rec: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    if "facts" in rec:
        return rec["facts"]
    return {title: {RESULTS: [figure]} for title, figure in rec.get("results_contains", {}).items()}


def eval_compare(paths: list[Path], verbose: bool) -> dict[str, Any]:
    """Per request form: requests with every named paper found, unknown names reported, papers wrongly added, facts
    in the right cell (and anywhere in the right row), a user-added aspect's facts, cell length and cut cells."""
    settings = get_settings()
    abstracts = {p.paper_id: p.abstract for p in api.list_papers(settings)}
    forms: dict[str, dict[str, Any]] = {}
    per: list[dict[str, Any]] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            extra = rec.get("extra_aspect") or {}
            aspects = [*DEFAULT_ASPECTS, extra["name"]] if extra else None
            table: Comparison = api.compare(rec["request"], settings, aspects=aspects)
            got = {r.title: r for r in table.rows}
            gold = [plain(t) for t in rec["gold"]]
            f = forms.setdefault(rec.get("form", "list"), Counter())
            f["requests"] += 1
            f["all_found"] += all(t in got for t in gold)
            f["names"] += len(gold)
            f["names_found"] += sum(t in got for t in gold)
            f["wrongly_added"] += len(set(got) - set(gold))
            f["unknown"] += len(rec.get("unresolved", []))
            f["unknown_reported"] += sum(
                any(u.lower() in x.lower() for x in table.unresolved) for u in rec.get("unresolved", [])
            )
            misses = []
            for title, by_aspect in _facts(rec).items():
                row = got.get(plain(title))
                for aspect, facts in by_aspect.items():
                    for fact in facts:
                        f["facts"] += 1
                        in_cell = row is not None and _found(fact, row.cells[aspect].text)
                        in_row = row is not None and any(_found(fact, c.text) for c in row.cells.values())
                        f["facts_in_cell"] += in_cell
                        f["facts_in_row"] += in_row
                        if not in_cell:
                            misses.append((title[:30], aspect, fact))
            for title, fact in (extra.get("facts") or {}).items():
                row = got.get(plain(title))
                cell = row.cells[extra["name"]].text if row is not None else ""
                f["extra"] += 1
                f["extra_ok"] += (cell == NOT_STATED) if fact is None else _found(fact, cell)
            for row in table.rows:
                for cell in row.cells.values():
                    if cell.text == NOT_STATED:
                        f["not_stated"] += 1
                        continue
                    f.setdefault("words", []).append(len(cell.text.split()))
                    f["cut"] += "…" in cell.text
                    f["informative"] += 1
                    f["verbatim"] += bool(cell.citations) and _verbatim(cell.quote, abstracts[row.paper_id])
            rows = [r.name for r in table.rows]
            per.append({"request": rec["request"], "form": rec.get("form", "list"), "rows": rows,
                        "unresolved": table.unresolved, "missed": misses})  # fmt: skip
            if verbose:
                print(json.dumps(per[-1], ensure_ascii=False), file=sys.stderr)
    forms["all"] = sum((Counter({k: v for k, v in f.items() if k != "words"}) for f in forms.values()), Counter())
    forms["all"]["words"] = [w for name, f in forms.items() if name != "all" for w in f.get("words", [])]
    report = {}
    for name, f in forms.items():
        report[name] = {
            "requests": f["requests"],
            "every_name_found": f"{f['all_found']}/{f['requests']}",
            "names_found": round(f["names_found"] / max(f["names"], 1), 3),
            "wrongly_added": f["wrongly_added"],
            "unknown_reported": f"{f['unknown_reported']}/{f['unknown']}",
            "facts_in_right_cell": round(f["facts_in_cell"] / max(f["facts"], 1), 3),
            "facts_in_right_row": round(f["facts_in_row"] / max(f["facts"], 1), 3),
            "added_aspect_ok": f"{f['extra_ok']}/{f['extra']}",
            "median_cell_words": statistics.median(f["words"]) if f.get("words") else 0,
            "cut_cells": f["cut"],
            "not_stated_cells": round(f["not_stated"] / max(f["not_stated"] + f["informative"], 1), 3),
            "verbatim_cited_cells": round(f["verbatim"] / max(f["informative"], 1), 3),
        }
    return {"by_form": report, "per_request": per}


def _topics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def eval_review(tuning: Path, fresh: Path, on_topic: Path, verbose: bool) -> dict[str, Any]:
    settings = get_settings()
    labels = {rec["topic"]: set(rec["on_topic"]) for rec in _topics(on_topic)}
    per = []
    for i, rec in enumerate([*_topics(tuning), *_topics(fresh)]):
        draft = api.review(rec["topic"], settings)
        gold = set(rec["gold"])
        fit = labels.get(rec["topic"], gold) | gold
        cited = {r.title for r in draft.references}
        relevant = {c.title for c in draft.coverage.relevant}
        row = {
            "topic": rec["topic"],
            "half": "tuned" if i < 8 and i % 2 == 0 else "held_out",
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
    halves = {
        "tuned": [r for r in per if r["half"] == "tuned"],
        "held_out": [r for r in per if r["half"] == "held_out"],
        "all": per,
    }
    return {"topics": len(per), "means": {name: _means(rows) for name, rows in halves.items()}, "per_topic": per}


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
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--verbose", action="store_true", help="per-item details to stderr")
    args = parser.parse_args()
    report: dict[str, Any] = {"compare": eval_compare([Path(x) for x in args.compare], args.verbose)}
    if not args.no_review:
        report["review"] = eval_review(Path(args.review), Path(args.fresh), Path(args.on_topic), args.verbose)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    c = report["compare"]["by_form"]
    keys = list(c["all"])
    print("compare, by request form")
    print(f"  {'':24s}" + "".join(f"{form:>10s}" for form in c))
    for key in keys:
        print(f"  {key:24s}" + "".join(f"{c[form][key]!s:>10s}" for form in c))
    if "review" not in report:
        return 0
    r = report["review"]
    print(f"review ({r['topics']} topics)")
    print(f"  {'topic':64s} half      gold cited recall(cited) recall(relevant) precision(on-topic) precision(gold)")
    for i, t in enumerate(r["per_topic"], 1):
        print(f"  {i:2d} {t['topic'][:61]:61s} {t['half']:8s} {t['gold']:4d} {t['cited']:5d} {t['recall_cited']:13.2f} "
              f"{t['recall_relevant']:16.2f} {t['precision_on_topic']:19.2f} {t['precision_gold']:15.2f}")  # fmt: skip
    for name, m in r["means"].items():
        count = sum(1 for t in r["per_topic"] if name == "all" or t["half"] == name)
        label = f"mean, {name.replace('_', '-')} topics ({count})"
        print(f"  {label:64s} {'':19s} {m['recall_cited']:13.2f} {m['recall_relevant']:16.2f} "
              f"{m['precision_on_topic']:19.2f} {m['precision_gold']:15.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
