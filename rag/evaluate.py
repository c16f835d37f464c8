"""Evaluation on a user's own question file: retrieval, answers, refusals, citations and latency."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from rag.answer import contextualise
from rag.config import Settings
from rag.corpus import normalise_title, numbered_lines
from rag.errors import RagError
from rag.models import EvalReport, Turn
from rag.text import content_words, plain


class EvalItem(BaseModel):
    """One line of an eval file. Empty `gold` means the corpus cannot answer the question; `answerable: false`
    with a gold paper means the question names that paper and asks for what its abstract does not report."""

    question: str
    gold: list[str] = Field(default_factory=list)
    answer_contains: list[str] = Field(default_factory=list)
    kind: str = ""
    history: list[str] = Field(default_factory=list)
    answerable: bool | None = None
    missing: str = ""

    @property
    def is_answerable(self) -> bool:
        return bool(self.gold) if self.answerable is None else self.answerable


Summary = Callable[[list[dict[str, Any]]], dict[str, float | int | None]]


class ExtraAspect(BaseModel):
    """A column the request adds, and per paper title the phrase its cell should hold (None: not stated)."""

    name: str
    facts: dict[str, str | None] = Field(default_factory=dict)


class CompareItem(BaseModel):
    """One line of a comparison eval file: the request, the papers it names (titles) and, per paper and column,
    phrases its cell should hold; or the kinds of approach it names ("quantization vs pruning"), each with the titles
    of the papers about it (any of which may stand for it)."""

    request: str
    gold: list[str] = Field(default_factory=list)
    families: dict[str, list[str]] = Field(default_factory=dict)
    form: str = ""
    unresolved: list[str] = Field(default_factory=list)
    facts: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    extra_aspect: ExtraAspect | None = None


def load_items(path: Path) -> list[EvalItem]:
    items = []
    for n, line in numbered_lines(path, "eval file"):
        try:
            items.append(EvalItem.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise RagError(f"{path}:{n}: {first['msg']} ({'.'.join(map(str, first['loc'])) or 'line'})") from None
    if not items:
        raise RagError(f"{path}: no questions")
    return items


_MARKER = re.compile(r"\[(\d+)\]")


def _resolver(papers: Mapping[str, Any]) -> dict[str, str]:
    index = {pid: pid for pid in papers}
    index.update({normalise_title(p.title): pid for pid, p in papers.items()})
    return index


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def _median(values: list[int]) -> float | int:
    middle = statistics.median(values or [0])
    return int(middle) if float(middle).is_integer() else middle


def _summarise(rows: list[dict[str, Any]]) -> dict[str, float | int | None]:
    single = [r for r in rows if len(r["gold"]) == 1]
    multi = [r for r in rows if len(r["gold"]) > 1]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    with_contains = [r for r in answerable if r["contains"] is not None]
    latencies = sorted(r["latency_s"] for r in rows)
    claims = sum(r["claims"] for r in rows)
    return {
        "hit@1": _mean([float(r["rank"] == 1) for r in single]),
        "hit@5": _mean([float(r["rank"] is not None and r["rank"] <= 5) for r in single]),
        "mrr": _mean([1 / r["rank"] if r["rank"] else 0.0 for r in single]),
        "recall@10": _mean([r["recall@10"] for r in multi]),
        "answer_contains": _mean([float(r["contains"]) for r in with_contains]),
        "gold_cited": _mean([float(r["gold_cited"]) for r in answerable if not r["refused"]]),
        "first_citation_gold": _mean([float(r["first_gold"]) for r in single if r["answerable"] and not r["refused"]]),
        "declined_unanswerable": sum(r["refused"] or r["partial"] for r in unanswerable),
        "unanswerable": len(unanswerable),
        "false_refusals": sum(r["refused"] for r in answerable),
        "partial_answerable": sum(r["partial"] for r in answerable),
        "answerable": len(answerable),
        "citation_validity": _mean([r["valid_citations"] for r in rows if r["citations"]]),
        "support_rate": round(sum(r["supported_claims"] for r in rows) / claims, 3) if claims else None,
        "median_words": _median([r["words"] for r in rows if not r["refused"]]),
        "latency_p50_s": round(latencies[len(latencies) // 2], 3) if latencies else None,
        "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
    }


def evaluate(path: Path, settings: Settings, k: int | None = None) -> EvalReport:
    """Run every question of the file through search and ask, and score the results; a file of comparison requests
    (lines with "request") goes through `compare` instead."""
    from rag.api import ask, get_retriever

    first = next((line for _, line in numbered_lines(path, "eval file")), "")
    if first.lstrip().startswith("{") and '"request"' in first:
        return evaluate_comparisons(path, settings)
    items = load_items(path)
    retriever = get_retriever(settings)
    resolve = _resolver(retriever.papers)
    golds: list[list[str]] = []
    for n, item in enumerate(items, 1):  # NOTE: every line is checked before the first question runs
        found = [
            resolve.get(g) or resolve.get(normalise_title(g)) or resolve.get(normalise_title(plain(g)))
            for g in item.gold
        ]
        if None in found:
            missing = item.gold[found.index(None)]
            raise RagError(f"{path}: question {n}: gold paper {missing!r} is not in the index")
        golds.append([g for g in found if g])
    rows: list[dict[str, Any]] = []
    for item, gold in zip(items, golds, strict=True):
        history: list[Turn] = []
        for earlier in item.history:
            history.append(Turn.after(ask(earlier, settings, k=k, history=history)))
        query, _ = contextualise(item.question, history)
        ranked = [h.paper_id for h in retriever.search(query, k=10)]
        start = time.perf_counter()
        answer = ask(item.question, settings, k=k, history=history)
        latency = time.perf_counter() - start
        cited = [c.paper_id for c in answer.citations]
        text = answer.answer.lower()
        markers = {int(m) for m in _MARKER.findall(answer.answer)}
        rows.append(
            {
                "question": item.question,
                "kind": item.kind or ("unanswerable" if not gold else "topic" if len(gold) > 1 else "single"),
                "gold": gold,
                "rank": next((i for i, pid in enumerate(ranked, 1) if pid in gold), None) if len(gold) == 1 else None,
                "recall@10": len(set(gold) & set(ranked)) / len(gold) if gold else None,
                "answerable": item.is_answerable,
                "refused": answer.refused,
                "partial": answer.partial,
                "contains": all(s.lower() in text for s in item.answer_contains) if item.answer_contains else None,
                "gold_cited": bool(set(gold) & set(cited)),
                "first_gold": bool(cited) and cited[0] in gold,
                "citations": len(answer.citations),
                "valid_citations": len(markers & {c.n for c in answer.citations}) / len(markers) if markers else 1.0,
                "claims": sum(c.content for c in answer.claims),  # NOTE: "Model: https://…" states nothing to support
                "supported_claims": sum(c.supported for c in answer.claims if c.content),
                "words": len(answer.answer.split()),
                "latency_s": round(latency, 4),
                "warnings": answer.warnings,
            }
        )
    return _report(path, settings, rows, _summarise, "questions")


def dump(report: EvalReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2)


def fact_found(fact: str, text: str) -> bool:
    """A phrase is in a cell when the cell holds it (spacing and '×' aside) or holds 80% of its content words."""

    def squash(value: str) -> str:
        return re.sub(r"[\s×]+|times", "", value.lower().replace("×", "x"))

    fact = plain(fact)  # NOTE: phrases copied from abstracts may carry the LaTeX the product turns into text
    if squash(fact) in squash(text):
        return True
    words = content_words(fact)
    return bool(words) and len(words & content_words(text)) >= 0.8 * len(words)


def evaluate_comparisons(path: Path, settings: Settings) -> EvalReport:
    """Run every comparison request of the file and score it per request form: named papers found, unknown names
    reported (and words reported as unknown names that the request does not give as names), papers added that were not
    named, phrases found in the right cell (and anywhere in the right row), a
    user-added column, cell length and cells cut mid-sentence."""
    from rag.api import compare
    from rag.compare import DEFAULT_ASPECTS, NOT_STATED, own_cell

    items = []
    for n, line in numbered_lines(path, "eval file"):
        try:
            items.append(CompareItem.model_validate_json(line))
        except ValidationError as exc:
            raise RagError(f"{path}:{n}: not a comparison request ({exc.errors()[0]['msg']})") from None
    rows: list[dict[str, Any]] = []
    for item in items:
        extra = item.extra_aspect
        table = compare(item.request, settings, aspects=[*DEFAULT_ASPECTS, extra.name] if extra else None)
        got = {normalise_title(r.title): r for r in table.rows}
        gold = [normalise_title(plain(t)) for t in item.gold]
        families = [{normalise_title(plain(t)) for t in titles} for titles in item.families.values()]
        about = set(gold).union(*families)
        facts = [
            (normalise_title(plain(title)), aspect, fact)
            for title, by_aspect in item.facts.items()
            for aspect, phrases in by_aspect.items()
            for fact in phrases
        ]
        # NOTE: a cell that points to another column of its row ("see “evaluation and reported results”") holds what
        # that column shows
        in_cell = [t in got and aspect in got[t].cells and fact_found(fact, own_cell(got[t], aspect).text)
                   for t, aspect, fact in facts]  # fmt: skip
        in_row = [t in got and any(fact_found(fact, c.text) for c in got[t].cells.values()) for t, _, fact in facts]
        extra_ok = []
        for title, fact in (extra.facts if extra else {}).items():
            row = got.get(normalise_title(plain(title)))
            cell = row.cells[extra.name].text if row is not None and extra is not None else ""
            extra_ok.append(cell == NOT_STATED if fact is None else fact_found(fact, cell))
        cells = [c.text for r in table.rows for c in r.cells.values() if not c.same_as]
        stated = [c for c in cells if c != NOT_STATED]
        rows.append(
            {
                "request": item.request,
                "kind": item.form or "request",
                "all_found": all(g in got for g in gold) and all(family & set(got) for family in families),
                "named": len(gold),
                "found": sum(g in got for g in gold),
                "families": len(families),
                "families_found": sum(bool(family & set(got)) for family in families),
                "rows": len(got),
                "wrongly_added": len(set(got) - about),
                "asked_for": len(set(got) & about),
                "unknown": len(item.unresolved),
                "unknown_reported": sum(any(u.lower() in x.lower() for x in table.unresolved) for u in item.unresolved),
                # NOTE: and words reported as names when they name nothing ("Which needs less memory")
                "wrongly_unknown": sum(
                    not any(u.lower() in x.lower() or x.lower() in u.lower() for u in item.unresolved)
                    for x in table.unresolved
                ),
                "facts": len(facts),
                "in_cell": sum(in_cell),
                "in_row": sum(in_row),
                "extra": len(extra_ok),
                "extra_ok": sum(extra_ok),
                "words": [len(c.split()) for c in stated],
                "cut": sum("…" in c for c in stated),
                "cells": len(cells),
                "not_stated": len(cells) - len(stated),
            }
        )
    return _report(path, settings, rows, _summarise_comparisons, "comparison requests")


def _report(path: Path, settings: Settings, rows: list[dict[str, Any]], summarise: Summary, unit: str) -> EvalReport:
    """The figures over all rows and per kind (question style or request form), kinds in alphabetical order."""
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        kinds[row["kind"]].append(row)
    return EvalReport(
        file=str(path),
        engine=settings.engine,
        questions=len(rows),
        unit=unit,
        metrics=summarise(rows),
        by_kind={kind: summarise(group) for kind, group in sorted(kinds.items())},
        rows=rows,
    )


def _summarise_comparisons(rows: list[dict[str, Any]]) -> dict[str, float | int | None]:
    def share(part: str, whole: str) -> float | None:
        total = sum(r[whole] for r in rows)
        return round(sum(r[part] for r in rows) / total, 3) if total else None

    return {
        "every_name_found": _mean([float(r["all_found"]) for r in rows]),
        "names_found": share("found", "named"),
        "kinds_found": share("families_found", "families"),
        "wrongly_added": sum(r["wrongly_added"] for r in rows),
        "rows_asked_for": share("asked_for", "rows"),
        "unknown_reported": share("unknown_reported", "unknown"),
        "wrongly_unknown": sum(r["wrongly_unknown"] for r in rows),
        "facts_in_right_cell": share("in_cell", "facts"),
        "facts_in_right_row": share("in_row", "facts"),
        "added_column_right": share("extra_ok", "extra"),
        "median_cell_words": _median([w for r in rows for w in r["words"]]),
        "cut_cells": sum(r["cut"] for r in rows),
        "not_stated_cells": share("not_stated", "cells"),
    }
