"""What every page shares: safe Markdown, settings from the session, cached loading, error display."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import streamlit as st
from pydantic import ValidationError

from rag.api import Settings, get_settings
from rag.export import md_escape
from rag.models import RagError

if TYPE_CHECKING:
    from rag.api import Retriever
    from rag.models import Paper

log = logging.getLogger(__name__)

_MARKER = re.compile(r"\\\[(\d+)\\\]")
_EMPHASIS = re.compile(r"\\\*([^*\n]+?)\\\*")


def _find(text: str, span: str) -> tuple[int, int] | None:
    """Where span occurs in text, ignoring differences in whitespace."""
    span = span.strip()
    if not span:
        return None
    at = text.find(span)
    if at >= 0:
        return at, at + len(span)
    pattern = r"\s+".join(re.escape(word) for word in span.split())
    match = re.search(pattern, text)
    return (match.start(), match.end()) if match else None


def highlight(text: str, spans: Sequence[str], color: str = "orange") -> str:
    """Safe Markdown of text with each span that occurs in it in bold on a coloured background (the tint alone was
    too faint to find at a glance)."""
    found = sorted(filter(None, (_find(text, s) for s in spans)))
    out, pos = [], 0
    for start, end in found:
        if start < pos:
            continue
        out.append(md_escape(text[pos:start]))
        out.append(f":{color}-background[**{md_escape(text[start:end])}**]")
        pos = end
    out.append(md_escape(text[pos:]))
    return "".join(out)


def source_link(paper_id: str, quote: str = "") -> str:
    """Where a `[n]` marker leads: the Library's view of the paper, its supporting sentence highlighted."""
    return "library?" + urlencode({"paper": paper_id, **({"quote": quote} if quote else {})})


def markers(markdown: str, links: Mapping[int, str] | None = None) -> str:
    """Show escaped `[n]` citation markers in bold blue; each one that has a source is a link that opens it."""

    def mark(found: re.Match[str]) -> str:
        n = int(found.group(1))
        label = f"**\\[{n}\\]**"
        return f"[{label}]({links[n]})" if links and n in links else f":blue[{label}]"

    return _MARKER.sub(mark, markdown)


def prose(text: str, links: Mapping[int, str] | None = None) -> str:
    """Generated prose as safe Markdown that keeps its `[n]` markers (linked to their sources) and `*emphasis*`."""
    return markers(_EMPHASIS.sub(r"*\1*", md_escape(text)), links)


def settings() -> Settings:
    """Settings for this run: environment and `.env`, overridden by the sidebar's session values."""
    state = st.session_state
    overrides: dict[str, object] = {}
    for field, key in (
        ("engine", "set_engine"),
        ("openai_base_url", "set_base_url"),
        ("llm_model", "set_model"),
        ("top_k", "set_top_k"),
    ):
        if state.get(key) not in (None, ""):
            overrides[field] = state[key]
    if state.get("llm_key") is not None:
        overrides["openai_api_key"] = state["llm_key"]
    try:
        return get_settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        st.error(f"Settings are invalid ({md_escape(problems)}). Fix them in the sidebar, or in `.env`.")
        st.stop()
        raise  # NOTE: unreachable, st.stop raises; keeps type checkers sure a Settings comes back


@st.cache_resource(show_spinner="Loading the embedding model and the index (first start only)…")
def _load(key: tuple[str, str], _settings: Settings) -> Retriever:
    # NOTE: imported here so the sidebar and navigation draw before the model libraries load.
    from rag import api

    retriever = api.get_retriever(_settings)
    retriever.search("warm up", k=1)  # NOTE: loads the embedding model and builds BM25 now, not at the first question
    return retriever


def retriever(settings: Settings) -> Retriever:
    """The retriever over the current index, loaded once per process."""
    return _load((settings.chroma_url or str(settings.home), settings.index_name), settings)


def forget_index() -> None:
    """Drop cached index state after an ingest changed it."""
    _load.clear()


@contextmanager
def guard(action: str) -> Iterator[None]:
    """Turn any failure inside the block into one st.error saying what to do; never a traceback."""
    try:
        yield
    except RagError as exc:
        st.error(f"{action} failed: {md_escape(str(exc))}", icon=":material/error:")
    except Exception as exc:
        log.exception("%s failed", action)
        st.error(
            f"{action} failed unexpectedly ({type(exc).__name__}: {md_escape(str(exc))}). "
            "Try again; if it keeps failing, check the settings in the sidebar and the server log.",
            icon=":material/error:",
        )


def paper_meta(paper: Paper) -> str:
    """One safe Markdown line: authors, year, source file and link."""
    parts = []
    if paper.authors:
        authors = ", ".join(paper.authors[:4]) + (" et al." if len(paper.authors) > 4 else "")
        parts.append(md_escape(authors))
    if paper.year:
        parts.append(str(paper.year))
    if paper.source:
        parts.append(f"from {md_escape(Path(paper.source).name)}")
    if paper.url and re.match(r"^https?://", paper.url):
        parts.append(f"[link]({paper.url.replace(')', '%29').replace(' ', '%20')})")
    return " · ".join(parts)


def show_paper(paper: Paper, quotes: Sequence[str] = ()) -> None:
    """A paper's metadata and abstract, with the quoted sentences highlighted."""
    meta = paper_meta(paper)
    if meta:
        st.caption(meta)
    st.markdown(highlight(paper.abstract, quotes))


def download_row(files: Sequence[tuple[str, str, str, str, str]]) -> None:
    """Download buttons side by side, each given as (label, data, file name, MIME type, widget key)."""
    row = st.container(horizontal=True)
    for label, data, name, mime, key in files:
        row.download_button(label, data, file_name=name, mime=mime, icon=":material/download:", key=key)


_ENDPOINT_FAILED = re.compile(r"^LLM endpoint (?P<where>\S+) failed(?: after [^:]*)?: (?P<why>.*?); (?P<then>[^;]*)$")


def show_warnings(warnings: Sequence[str]) -> None:
    """Each warning once, in plain words; what only a developer needs (an error's type and errno) is behind an
    expander. A review whose every section fell back for the same endpoint failure says it once."""
    seen: set[str] = set()
    failures: dict[str, list[str]] = {}
    for warning in warnings:
        if (match := _ENDPOINT_FAILED.match(warning)) is not None:
            failures.setdefault(match["where"], []).append(match["why"])
            continue
        if warning not in seen:
            seen.add(warning)
            st.warning(md_escape(warning), icon=":material/warning:")
    for where, reasons in failures.items():
        st.warning(
            md_escape(f"The LLM at {where} did not answer, so this was written offline from quoted sentences."),
            icon=":material/cloud_off:",
        )
        with st.expander("Technical details"):
            for reason in dict.fromkeys(reasons):
                st.text(reason)
