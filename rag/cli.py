"""The `rag` command line: a thin front door over the rag package's API."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rag.errors import RagError

log = logging.getLogger("rag")


def _emit(obj: Any) -> None:
    data = obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _inputs(args: argparse.Namespace, field: str = "text") -> Iterator[str]:
    """The positional text, or each non-empty line of --batch (JSON Lines or plain text)."""
    if args.batch:
        path = Path(args.batch)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise RagError(f"{path}: cannot read batch file ({getattr(exc, 'strerror', None) or exc})") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RagError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
                keys = [field, "question", "query", "request", "topic", "text"]
                value = next((record[k] for k in keys if isinstance(record.get(k), str)), None)
                if value is None:
                    raise RagError(f"{path}:{n}: no {field!r} field in the JSON object")
                yield value
            else:
                yield line
    elif args.text:
        yield " ".join(args.text)
    else:
        raise RagError("give the text as an argument or --batch FILE")


def _settings(args: argparse.Namespace) -> Any:
    from rag.config import get_settings

    overrides: dict[str, Any] = {}
    if getattr(args, "engine", None):
        overrides["engine"] = args.engine
    try:
        return get_settings(**overrides)
    except Exception as exc:
        errors: list[Any] = getattr(exc, "errors", lambda: [])()
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise RagError(f"bad setting {where}: {first.get('msg')}") from None
        raise RagError(f"bad settings: {exc}") from None


# --- commands -------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from rag.api import check_index, ingest_paths

    settings = _settings(args)
    if args.check:
        checked = check_index(settings)
        if args.json:
            _emit(checked.__dict__)
        else:
            print(
                f"Checked {checked.papers} papers in {checked.index}: {len(checked.damaged)} damaged"
                + (f", re-embedded ({checked.chunks_embedded} chunks)." if checked.damaged else ".")
            )
        return 0
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=_stderr_console(), transient=True, disable=args.json or not sys.stderr.isatty(),
    ) as bar:  # fmt: skip
        task = bar.add_task("embedding papers", total=None)
        report = ingest_paths(
            args.paths, settings, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    if args.json:
        _emit(report.__dict__)
        return 0
    skipped = ", ".join(f"{n} {why}" for why, n in report.skipped.items()) or "none"
    print(
        f"Indexed {report.total_papers} papers into {report.index}: {report.added} added, {report.updated} updated, "
        f"{report.removed} removed, {report.unchanged} unchanged; {report.chunks_embedded} chunks embedded. "
        f"Skipped records: {skipped}."
    )
    return 0


def cmd_papers(args: argparse.Namespace) -> int:
    from rag.api import list_papers

    papers = list_papers(_settings(args))
    if args.json:
        for paper in papers:
            _emit(paper)
        return 0
    table = _table("paper_id", "title", "year")
    for p in papers:
        table.add_row(p.paper_id, p.title, str(p.year or ""))
    _stdout_console().print(table)
    print(f"{len(papers)} papers")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from rag.api import get_retriever

    retriever = get_retriever(_settings(args))
    for query in _inputs(args):
        hits = retriever.search(query, k=args.k)
        if args.json:
            _emit({"query": query, "results": [h.model_dump(mode="json") for h in hits]})
            continue
        table = _table("#", "score", "title", title=query)
        for i, hit in enumerate(hits, 1):
            table.add_row(str(i), f"{hit.score:.3f}", hit.title)
        _stdout_console().print(table)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.api import ask
    from rag.export import answer_markdown

    settings = _settings(args)
    for question in _inputs(args, "question"):
        answer = ask(question, settings, k=args.k)
        if args.json:
            _emit(answer)
        else:
            _stdout_console().print(_markdown(answer_markdown(answer)))
            for warning in answer.warnings:
                print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rag.api import compare
    from rag.export import write_comparison

    settings = _settings(args)
    requests = [] if (args.papers and not (args.text or args.batch)) else list(_inputs(args, "request"))
    for request in requests or [""]:
        table = compare(request, settings, paper_ids=args.papers or None, aspects=args.aspect or None)
        if args.format:
            print(write_comparison(table, args.format, args.output))
        elif args.json:
            _emit(table)
        else:
            _stdout_console().print(_markdown(write_comparison(table, "md", None)))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from rag.api import review
    from rag.export import write_review

    settings = _settings(args)
    for topic in _inputs(args, "topic"):
        draft = review(topic, settings)
        if args.format:
            print(write_review(draft, args.format, args.output))
        elif args.json:
            _emit(draft)
        else:
            _stdout_console().print(_markdown(draft.markdown))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.evaluate import evaluate, render_report

    report = evaluate(Path(args.file), _settings(args), k=args.k)
    if args.json:
        _emit(report)
    else:
        console = _stdout_console()
        console.print(render_report(report, console.width))
    return 0


# --- plumbing -------------------------------------------------------------------------------


def _stdout_console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False, markup=False, highlight=False)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _table(*columns: str, title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, show_lines=False, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _markdown(text: str) -> Any:
    from rich.markdown import Markdown

    return Markdown(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_: str, text: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="print JSON (JSON Lines with --batch)")
        if text:
            p.add_argument("text", nargs="*", help="the text (omit with --batch)")
            p.add_argument("--batch", metavar="FILE", help="one input per line (plain or JSON Lines)")
        return p

    p = add("ingest", cmd_ingest, "index corpus files (default: the bundled corpus)", text=False)
    p.add_argument("paths", nargs="*", help=".txt, .jsonl, .json, .csv or .bib files")
    p.add_argument("--check", action="store_true", help="find papers with missing chunks or embeddings; re-embed them")
    add("papers", cmd_papers, "list the indexed papers", text=False)
    p = add("search", cmd_search, "find papers for a query (hybrid BM25 + dense)")
    p.add_argument("--k", type=int, default=10, help="how many papers")
    p = add("ask", cmd_ask, "answer a question with verified citations")
    p.add_argument("--engine", choices=["extractive", "llm"], help="answer engine (default RAG_ENGINE)")
    p.add_argument("--k", type=int, default=None, help="papers to read (default RAG_TOP_K)")
    p = add("compare", cmd_compare, "compare papers side by side in a cited matrix")
    p.add_argument("--papers", nargs="+", metavar="ID", help="paper ids instead of a request")
    p.add_argument("--aspect", action="append", help="a column (repeatable); default: research aspects")
    p.add_argument("--engine", choices=["extractive", "llm"], help="engine (default RAG_ENGINE)")
    p.add_argument("--format", choices=["md", "csv", "json"], help="write an export")
    p.add_argument("--output", "-o", help="export file (default stdout)")
    p = add("review", cmd_review, "draft a cited literature review of a topic")
    p.add_argument("--engine", choices=["extractive", "llm"], help="engine (default RAG_ENGINE)")
    p.add_argument("--format", choices=["md", "bib", "json"], help="write an export")
    p.add_argument("--output", "-o", help="export file (default stdout)")
    p = add("eval", cmd_eval, "measure retrieval, answers and citations on a question file", text=False)
    p.add_argument("file", help="JSON Lines: question, gold, answer_contains")
    p.add_argument("--engine", choices=["extractive", "llm"], help="engine (default RAG_ENGINE)")
    p.add_argument("--k", type=int, default=None, help="papers to read per question")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return int(args.func(args))
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
