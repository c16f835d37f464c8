"""Exports: answers, comparison matrices and review drafts as Markdown, CSV, JSON and BibTeX."""

from __future__ import annotations

from rag.types import Answer


def answer_markdown(answer: Answer) -> str:
    """The answer with its numbered references and supporting quotes, as Markdown."""
    lines = [answer.answer, ""]
    if answer.citations:
        lines.append("**References**")
        lines.append("")
        for c in answer.citations:
            flag = "" if c.supported else " — ⚠ not verified as supported"
            lines.append(f"[{c.n}] {c.title}{flag}")
            lines.append(f"    > {c.quote}")
    if answer.refused and answer.related:
        lines.append("**Related papers**")
        lines.append("")
        lines += [f"- {h.title}" for h in answer.related[:5]]
    return "\n".join(lines).rstrip() + "\n"
