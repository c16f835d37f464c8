"""Evaluation on a user's own question file: retrieval, answers, refusals, citations and latency."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from rag.answer import Turn, contextualise
from rag.config import Settings
from rag.corpus import normalise_title, numbered_lines
from rag.errors import RagError
from rag.text import plain


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


class EvalReport(BaseModel):
    """Figures overall and per question kind, plus per-question rows."""

    file: str
    engine: str
    questions: int
    metrics: dict[str, float | int | None]
    by_kind: dict[str, dict[str, float | int | None]]
    rows: list[dict[str, Any]]


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


def _resolver(papers: dict[str, Any]) -> dict[str, str]:
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
    """Run every question of the file through search and ask, and score the results."""
    from rag.api import ask, get_retriever

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
        history = []
        for earlier in item.history:
            prior = ask(earlier, settings, k=k)
            history.append(Turn(earlier, [c.paper_id for c in prior.citations] + [h.paper_id for h in prior.related]))
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
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        kinds[row["kind"]].append(row)
    return EvalReport(
        file=str(path),
        engine=settings.engine,
        questions=len(rows),
        metrics=_summarise(rows),
        by_kind={kind: _summarise(group) for kind, group in sorted(kinds.items())},
        rows=rows,
    )


def render_report(report: EvalReport, width: int = 80) -> Any:
    """A readable table of the figures, overall and per kind; split in several when too wide for `width`."""
    from rich.console import Group
    from rich.table import Table

    names = list(report.metrics)
    columns = {"all": report.metrics, **report.by_kind}
    cells = {kind: ["–" if values[n] is None else str(values[n]) for n in names] for kind, values in columns.items()}
    # NOTE: a column takes its widest cell plus 3 for padding and border; the metric names never fold.
    metric_width = max(map(len, ["metric", *names])) + 4
    parts: list[list[str]] = [[]]
    used = metric_width
    for kind in columns:
        need = max(map(len, [kind, *cells[kind]])) + 3
        if parts[-1] and used + need > width:
            parts.append([])
            used = metric_width
        parts[-1].append(kind)
        used += need
    tables = []
    for n, kinds in enumerate(parts):
        title = f"{report.file} — {report.questions} questions, engine {report.engine}" if n == 0 else None
        table = Table(title=title, title_justify="left")
        table.add_column("metric", no_wrap=True)
        for kind in kinds:
            table.add_column(kind, justify="right", no_wrap=True)
        for i, name in enumerate(names):
            table.add_row(name, *(cells[kind][i] for kind in kinds))
        tables.append(table)
    return Group(*tables)


def dump(report: EvalReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2)
