"""Compare: pick papers or describe them, choose the aspects, and read a cited comparison matrix."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rag import api
from rag.api import DEFAULT_ASPECTS
from rag.app.common import download_row, guard, prose, retriever, settings, show_warnings, source_link
from rag.export import md_escape, write_comparison
from rag.models import Cell, Comparison

EXTRA_ASPECTS = ("datasets", "model size", "hardware", "open source")


def cell_text(cell: Cell | None) -> str:
    """A cell's text followed by its citation markers, as plain text for the table."""
    if cell is None:
        return "—"
    cites = "".join(f" [{n}]" for n in cell.citations)
    return f"{cell.text}{cites}" if cell.text else "—"


def matrix(table: Comparison) -> pd.DataFrame:
    """Aspects down, papers across: a few papers side by side read like a comparison, and any number of aspects
    (the user's own included) stays on screen."""
    columns = {
        f"[{n}] {row.name}" + (f" ({row.kind})" if row.kind else ""): [
            cell_text(row.cells.get(aspect)) for aspect in table.aspects
        ]
        for n, row in enumerate(table.rows, 1)
    }
    return pd.DataFrame(columns, index=pd.Index(table.aspects, name="aspect"))


def show(table: Comparison) -> None:
    show_warnings(table.warnings)  # NOTE: names each unknown or ambiguous name, with why
    if not table.rows:
        st.info("Nothing to compare: no paper in the library was found for this request.")
        return
    # NOTE: a static table wraps every cell whole; a data grid clipped whole sentences and hid columns and rows
    st.table(matrix(table))
    if st.toggle("Show the supporting quotes", key="compare_quotes"):
        for row in table.rows:
            with st.expander(md_escape(row.title), expanded=True):
                for aspect in table.aspects:
                    cell = row.cells.get(aspect)
                    if cell is not None and cell.quote:
                        st.markdown(f"**{md_escape(aspect)}** — {md_escape(cell.quote)}")
    if table.synthesis:
        st.subheader("Synthesis", anchor=False)
        st.markdown(prose(table.synthesis, {c.n: source_link(c.paper_id, c.quote) for c in table.citations}))
    if table.citations:
        st.markdown("**References**")
        st.markdown("\n\n".join(f"{md_escape(f'[{c.n}]')} {md_escape(c.title)}" for c in table.citations))


def downloads(table: Comparison) -> None:
    download_row(
        [
            ("Markdown", write_comparison(table, "md", None), "comparison.md", "text/markdown", "compare_download_md"),
            ("CSV", write_comparison(table, "csv", None), "comparison.csv", "text/csv", "compare_download_csv"),
        ]
    )


config = settings()
titles = dict(sorted(retriever(config).papers.titles.items(), key=lambda kv: kv[1].lower()))

st.title("Compare papers", anchor=False)
st.caption("Pick papers from the library, or describe what to compare and let retrieval pick them.")
with st.form("compare_form", border=True):
    picked = st.multiselect(
        "Papers",
        list(titles),
        format_func=titles.__getitem__,
        key="compare_papers",
        placeholder="Type to search the library…",
        # NOTE: Enter picks the highlighted title; fuzzy matching with "Select all matches" added unrelated papers
        filter_mode="contains",
        select_all=False,
    )
    request = st.text_input(
        "…or a request", key="compare_request", placeholder="e.g. compare methods for efficient LLM inference"
    )
    aspects = st.multiselect(
        "Aspects",
        [*DEFAULT_ASPECTS, *EXTRA_ASPECTS],
        default=list(DEFAULT_ASPECTS),
        accept_new_options=True,
        select_all=False,
        key="compare_aspects",
        help="Type a new aspect and press Enter to add it.",
    )
    submitted = st.form_submit_button("Compare", type="primary", icon=":material/compare_arrows:", key="compare_run")

if submitted:
    if not picked and not request.strip():
        st.warning("Pick at least two papers or type a request.")
    elif picked and len(picked) < 2:
        st.warning("Pick at least two papers to compare.")
    else:
        with guard("Comparing"), st.spinner("Reading the abstracts and filling the matrix…"):
            st.session_state["comparison"] = api.compare(
                request.strip(), config, paper_ids=picked or None, aspects=aspects or None
            )
if st.session_state.get("comparison") is not None:
    with guard("Showing the comparison"):
        show(st.session_state["comparison"])
    if st.session_state["comparison"].rows:
        with guard("Preparing the downloads"):
            downloads(st.session_state["comparison"])
