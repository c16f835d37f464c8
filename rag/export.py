"""Exports: answers, comparison matrices and review drafts as Markdown, CSV, JSON and BibTeX; eval reports as tables."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.models import Answer, Comparison, EvalReport, Paper, Reference, ReviewDraft
from rag.text import STOPWORDS

# NOTE: every ASCII punctuation character may be backslash-escaped in CommonMark, so escaping these
# turns paper and model text into literal text: no HTML, links, images, LaTeX ($) or directives (:).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&=\"'^])")


def md_escape(text: str) -> str:
    """Text that Markdown (Streamlit's, rich's) shows verbatim (paragraph breaks kept)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def answer_markdown(answer: Answer) -> str:
    """The answer with its numbered references and supporting quotes, as Markdown."""
    lines = [answer.answer, ""]
    if answer.read_as:
        lines += [f"*{md_escape(read_as(answer.read_as))}*", ""]
    if answer.citations:
        lines += ["**References**", ""]
        for c in answer.citations:
            flag = "" if c.supported else " (not verified as supported)"
            lines += [f"- [{c.n}] *{c.title}*{flag}", f"  > {c.quote}", ""]
    if answer.refused and answer.related:
        lines += ["**Related papers**", ""]
        lines += [f"- {h.title}" for h in answer.related[:5]]
    return "\n".join(lines).rstrip() + "\n"


def read_as(glossed: dict[str, str]) -> str:
    """How search read the question's everyday words: 'Searched with “graphics cards” also read as GPU and
    “reprogrammable chip” as FPGA.' (plain text)."""
    said = [f"“{words}” {'also read as' if n == 0 else 'as'} {term}" for n, (words, term) in enumerate(glossed.items())]
    return "Searched with " + (", ".join(said[:-1]) + " and " + said[-1] if len(said) > 1 else said[0]) + "."


# --- comparisons and reviews ---------------------------------------------------------------------


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ").strip()


def comparison_markdown(table: Comparison, by_paper: bool = False) -> str:
    """The matrix as a Markdown table (one row per paper), or `by_paper`, each paper's cells as a list (a terminal too
    narrow for the table cut its words to "advancemen…"); then the synthesis, sources and unresolved names."""
    lines: list[str] = []
    cells = [[md_cell(row.cells[a].text + "".join(f" [{c}]" for c in row.cells[a].citations)) for a in table.aspects]
             for row in table.rows]  # fmt: skip
    if table.rows and by_paper:
        for n, (row, texts) in enumerate(zip(table.rows, cells, strict=True), 1):
            lines += [f"**{md_cell(row.name)} [{n}]**", ""]
            lines += [f"- *{md_cell(a)}:* {text}" for a, text in zip(table.aspects, texts, strict=True)]
            lines.append("")
    elif table.rows:
        lines += ["| paper | " + " | ".join(md_cell(a) for a in table.aspects) + " |"]
        lines += ["| --- " * (len(table.aspects) + 1) + "|"]
        for n, (row, texts) in enumerate(zip(table.rows, cells, strict=True), 1):
            lines.append(f"| {md_cell(row.name)} [{n}] | " + " | ".join(texts) + " |")
        lines.append("")
    if table.synthesis:
        lines += [f"**Synthesis.** {table.synthesis}", ""]
    if table.citations:
        lines += ["**Sources**", ""]
        lines += [f"[{c.n}] {c.title}  " for c in table.citations]
        lines.append("")
    if table.unresolved:
        names = ", ".join(f"“{u}”" for u in table.unresolved)
        lines += [f"**Not resolved:** {names}. Name each approach by its system name or title words, "
                  "or pass paper ids with `--papers`.", ""]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: one that starts like a formula (= + - @, tab or CR) gets a leading
    apostrophe, as OWASP recommends against CSV injection. Numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def comparison_csv(table: Comparison) -> str:
    """One CSV row per paper: id, title, then each aspect's statement and its verbatim supporting sentence."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["n", "paper_id", "title", *[h for a in table.aspects for h in (a, f"{a} (quote)")]]
    writer.writerow([csv_cell(h) for h in header])
    for n, row in enumerate(table.rows, 1):
        values = [v for a in table.aspects for v in (row.cells[a].text, row.cells[a].quote)]
        writer.writerow([csv_cell(v) for v in [n, row.paper_id, row.title, *values]])
    return buffer.getvalue()


def write_comparison(table: Comparison, fmt: str, output: str | Path | None) -> str:
    """The comparison as md, csv or json: the text itself, or a one-line message after writing `output`."""
    writers = {"md": comparison_markdown, "csv": comparison_csv, "json": lambda t: t.model_dump_json(indent=2)}
    return _write(writers, fmt, table, output, f"comparison of {len(table.rows)} papers")


def review_markdown(draft: ReviewDraft) -> str:
    """The draft as Markdown: title, outline, sections, references and the coverage report."""
    lines = [f"# {draft.title}", ""]
    if draft.refusal:
        lines += [draft.refusal, ""]
    if draft.outline:
        lines += ["**Outline**", "", *[f"{i}. {h}" for i, h in enumerate(draft.outline, 1)], ""]
    for section in draft.sections:
        lines += [f"## {section.heading}", "", section.text, ""]
    if draft.references:
        lines += ["## References", ""]
        for ref in draft.references:
            year = f" ({ref.year})" if ref.year else ""
            url = f" <{ref.url}>" if ref.url else ""
            lines.append(f"[{ref.n}] {ref.title}{year}.{url}  ")
        lines.append("")
    cov = draft.coverage
    if cov.relevant:
        lines += [
            "## Coverage",
            "",
            f"{len(cov.relevant)} of {cov.indexed} indexed papers scored close enough to the topic to consider; "
            f"the draft cites {len(cov.cited)} and leaves out {len(cov.left_out)}.",
            "",
        ]
        if cov.left_out:
            lines += ["| left out | score | why |", "| --- | --- | --- |"]
            lines += [f"| {md_cell(c.title)} | {c.score:.2f} | {c.reason}: {md_cell(c.detail)} |" for c in cov.left_out]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def bibtex_key(paper: Paper | Reference) -> str:
    """A stable citation key from the metadata: first author's surname or the title's first word, year, id hash."""
    surname = re.sub(r"[^A-Za-z]", "", paper.authors[0].split()[-1]) if paper.authors else ""
    word = next((w for w in re.findall(r"[A-Za-z][A-Za-z0-9]+", paper.title) if w.lower() not in STOPWORDS), "paper")
    stem = (surname or word).lower()[:20]
    digest = hashlib.sha1(paper.paper_id.encode()).hexdigest()[:4]
    return f"{stem}{paper.year or ''}_{digest}"


def _braced(text: str) -> str:
    """A BibTeX value whose braces balance: an unbalanced `{` would swallow the entries after it."""
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    return text if depth == 0 else text.replace("{", "(").replace("}", ")")


def review_bibtex(draft: ReviewDraft) -> str:
    """The reference list as BibTeX, written with bibtexparser."""
    from bibtexparser.entrypoint import write_string
    from bibtexparser.library import Library
    from bibtexparser.model import Entry, Field

    library = Library()
    for ref in draft.references:
        fields = [Field("title", "{" + _braced(ref.title) + "}")]
        if ref.authors:
            fields.append(Field("author", _braced(" and ".join(ref.authors))))
        if ref.year:
            fields.append(Field("year", str(ref.year)))
        if ref.url:
            fields.append(Field("url", ref.url))
        fields.append(Field("note", f"paper id {ref.paper_id}; cited as [{ref.n}]"))
        library.add(Entry("misc", bibtex_key(ref), fields))
    return str(write_string(library))


def write_review(draft: ReviewDraft, fmt: str, output: str | Path | None) -> str:
    """The review as md, bib or json: the text itself, or a one-line message after writing `output`."""
    writers = {"md": review_markdown, "bib": review_bibtex, "json": lambda d: d.model_dump_json(indent=2)}
    return _write(writers, fmt, draft, output, f"review with {len(draft.references)} references")


def _write(writers: dict[str, Any], fmt: str, obj: Any, output: str | Path | None, what: str) -> str:
    if fmt not in writers:
        raise RagError(f"unknown export format {fmt!r}; use one of {', '.join(writers)}")
    text = str(writers[fmt](obj))
    if not output:
        return text
    path = Path(output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RagError(f"cannot write {path} ({exc.strerror}); choose another --output path") from None
    return f"wrote {what} as {fmt} to {path}"


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
        title = f"{report.file} — {report.questions} {report.unit}, engine {report.engine}" if n == 0 else None
        table = Table(title=title, title_justify="left")
        table.add_column("metric", no_wrap=True)
        for kind in kinds:
            table.add_column(kind, justify="right", no_wrap=True)
        for i, name in enumerate(names):
            table.add_row(name, *(cells[kind][i] for kind in kinds))
        tables.append(table)
    return Group(*tables)
