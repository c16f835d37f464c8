"""The `rag` command line: a thin front door over the rag package's API."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rag.models import RagError

log = logging.getLogger("rag")
# A comparison shows as a table in a terminal this many columns wide per column, else paper by paper: in 80 columns
# the table's six columns are 13 characters wide, a word per line.
TABLE_COLUMN_WIDTH = 30


def _emit(obj: Any) -> None:
    data = obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _inputs(args: argparse.Namespace, field: str = "text") -> Iterator[str]:
    """The positional text, or each non-empty line of --batch (JSON Lines or plain text)."""
    from rag.api import read_texts

    text = " ".join(args.text or ()).strip()
    if args.batch:
        yield from read_texts(args.batch, field)
    elif text:
        yield text
    else:  # NOTE: `rag search ""` printed an empty table and exited 0
        raise RagError(f"give the {'query' if field == 'text' else field} as an argument or --batch FILE")


def _settings(args: argparse.Namespace) -> Any:
    from rag.api import env_notices, get_settings

    for notice in env_notices():
        print(f"note: {notice}", file=sys.stderr)

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
    from rag import api

    papers = api.papers(_settings(args))
    if args.json:
        for paper in papers:
            _emit(paper)
        return 0
    table = _table("paper_id", "title", "year")
    for p in papers:
        table.add_row(safe(p.paper_id), safe(p.title), str(p.year or ""))
    _stdout_console().print(table)
    print(f"{len(papers)} papers")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from rag import api
    from rag.export import read_as

    settings = _settings(args)
    for query in _inputs(args):
        hits = api.search(query, settings, k=args.k)
        glossed = api.get_retriever(settings).glossed(query)
        if args.json:
            _emit({"query": query, "read_as": glossed, "results": [h.model_dump(mode="json") for h in hits]})
            continue
        table = _table("#", "score", "title", title=query, caption=read_as(glossed) if glossed else None)
        for i, hit in enumerate(hits, 1):
            table.add_row(str(i), f"{hit.score:.3f}", safe(hit.title))
        _stdout_console().print(table)
    return 0


def _print_answer(answer: Any, as_json: bool) -> None:
    from rag.export import answer_markdown

    if as_json:
        _emit(answer)
        _warn(answer.warnings)
        return
    _stdout_console().print(_markdown(answer_markdown(answer)))
    _warn(answer.warnings)


def _warn(warnings: list[str]) -> None:
    """Warnings go to stderr on every command, with or without --json (where they are also in the JSON)."""
    for warning in warnings:
        print(f"warning: {safe(warning)}", file=sys.stderr)


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.api import ask, read_history

    settings = _settings(args)
    history = read_history(args.history) if args.history else []
    for question in _inputs(args, "question"):
        _print_answer(ask(question, settings, k=args.k, history=history), args.json)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """Questions from standard input, one a line; each follow-up is read in the light of the earlier turns."""
    from rag.api import ask, get_retriever, read_history
    from rag.models import Turn

    settings = _settings(args)
    get_retriever(settings)  # NOTE: load (or build) the index before the first prompt, not after it
    history: list[Turn] = read_history(args.history) if args.history else []
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask about the indexed papers; follow-ups may say 'it' or 'they'. Empty line or Ctrl-D to quit.")
    while True:
        try:
            question = input("> " if interactive else "").strip()
        except EOFError:
            break
        if not question:
            if interactive:
                break
            continue
        answer = ask(question, settings, k=args.k, history=history)
        _print_answer(answer, args.json)
        history.append(Turn.after(answer))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rag.api import compare
    from rag.export import comparison_markdown, write_comparison

    settings = _settings(args)
    requests = [] if (args.papers and not (args.text or args.batch)) else list(_inputs(args, "request"))
    for request in requests or [""]:
        table = compare(request, settings, paper_ids=args.papers or None, aspects=args.aspect or None)
        _warn(table.warnings)
        if args.format:
            print(_terminal(write_comparison(table, args.format, args.output)))
        elif args.json:
            _emit(table)
        else:
            console = _stdout_console()
            by_paper = console.width < TABLE_COLUMN_WIDTH * (len(table.aspects) + 1)
            console.print(_markdown(comparison_markdown(table, by_paper)))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from rag.api import review
    from rag.export import write_review

    settings = _settings(args)
    for topic in _inputs(args, "topic"):
        draft = review(topic, settings)
        _warn(draft.warnings)
        if args.format:
            print(_terminal(write_review(draft, args.format, args.output)))
        elif args.json:
            _emit(draft)
        else:
            _stdout_console().print(_markdown(write_review(draft, "md", None)))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.api import evaluate
    from rag.export import render_report

    report = evaluate(args.file, _settings(args), k=args.k)
    if args.json:
        _emit(report)
    else:
        console = _stdout_console()
        console.print(render_report(report, console.width))
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    """Serve the Streamlit app on loopback with the settings shipped beside it (rag/app/config.toml)."""
    import tomllib
    from importlib import resources

    app = resources.files("rag.app")
    config = tomllib.loads((app / "config.toml").read_text())
    flags = [
        f"--{section}.{key}={str(value).lower() if isinstance(value, bool) else value}"
        for section, options in config.items()
        for key, value in options.items()
    ]
    command = [sys.executable, "-m", "streamlit", "run", str(app / "main.py"), *flags, f"--server.port={args.port}"]
    print(f"Serving the app on http://127.0.0.1:{args.port} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    os.execv(sys.executable, command)  # NOTE: Streamlit takes this process, so signals reach it directly


# --- plumbing -------------------------------------------------------------------------------


def _stdout_console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False, markup=False, highlight=False)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _table(*columns: str, title: str | None = None, caption: str | None = None) -> Any:
    from rich.table import Table
    from rich.text import Text

    def plain(text: str | None) -> Text | None:  # NOTE: a query's "[...]" is not rich markup
        return None if text is None else Text(safe(text))

    table = Table(
        title=plain(title), caption=plain(caption), show_lines=False, title_justify="left", caption_justify="left"
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _markdown(text: str) -> Any:
    from rich.markdown import Markdown

    return Markdown(safe(text))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """Text from papers, models and errors without control characters: no escape sequence reaches a terminal."""
    return _CONTROL.sub("", text)


def _terminal(text: str) -> str:
    """An export printed to standard output: made safe when that is a terminal, byte for byte when piped."""
    return safe(text) if sys.stdout.isatty() else text


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
    p.add_argument(
        "paths", nargs="*", help="corpus files (.txt, .jsonl, .json, .csv, .tsv, .bib, .ris, .pdf) or folders of them"
    )
    p.add_argument("--check", action="store_true", help="find papers with missing chunks or embeddings; re-embed them")
    add("papers", cmd_papers, "list the indexed papers", text=False)
    p = sub.add_parser("app", help="serve the app on http://127.0.0.1:PORT", description="serve the app on loopback")
    p.set_defaults(func=cmd_app)
    p.add_argument("--port", type=int, default=8501, help="the port (default 8501)")
    p = add("search", cmd_search, "find papers for a query (hybrid BM25 + dense)")
    p.add_argument("--k", type=int, default=10, help="how many papers")
    p = add("ask", cmd_ask, "answer a question with verified citations")
    p.add_argument("--engine", choices=["extractive", "llm"], help="answer engine (default RAG_ENGINE)")
    p.add_argument("--k", type=int, default=None, help="papers to read (default RAG_TOP_K)")
    p.add_argument("--history", metavar="FILE", help="earlier turns, JSON Lines (e.g. saved `rag ask --json` output)")
    p = add("chat", cmd_chat, "ask questions one a line from standard input, with follow-ups", text=False)
    p.add_argument("--engine", choices=["extractive", "llm"], help="answer engine (default RAG_ENGINE)")
    p.add_argument("--k", type=int, default=None, help="papers to read (default RAG_TOP_K)")
    p.add_argument("--history", metavar="FILE", help="earlier turns to start from, JSON Lines")
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


_URL_SECRET = re.compile(
    r"(?<=://)[^/\s@]+@|(?<=[?&])([\w-]*(?:key|token|secret|password|auth|sig)[\w-]*=)[^&\s]+", re.I
)


def _redact_record(record: logging.LogRecord) -> bool:
    """Logging filter: credentials inside URLs (userinfo, key-like query parameters) never reach the log."""
    message = record.getMessage()
    clean = _URL_SECRET.sub(lambda m: f"{m.group(1)}***" if m.group(1) else "***@", message)
    if clean != message:
        record.msg, record.args = clean, None
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        logging.getLogger("pypdf").setLevel(logging.ERROR)  # NOTE: it warns about every untidy PDF it still reads
    for handler in logging.getLogger().handlers:
        handler.addFilter(_redact_record)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return int(args.func(args))
    except RagError as exc:
        print(f"error: {safe(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
