"""Review: a topic in, an outline, cited sections, references and a coverage report out."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rag import api
from rag.app.common import download_row, guard, prose, settings, show_warnings, source_link
from rag.export import md_escape, write_review
from rag.models import Coverage, ReviewDraft


def coverage(report: Coverage) -> None:
    """Which of the papers scored close to the topic the draft cites, and why it left the others out."""
    st.markdown(
        f"**Coverage** — {len(report.cited)} of {len(report.relevant)} candidate papers cited "
        f"({report.indexed} in the library), {len(report.left_out)} left out"
    )
    if report.left_out:
        # NOTE: a static table wraps every reason whole; the data grid cut the "Detail" column off
        st.table(
            pd.DataFrame(
                [
                    {"Paper": i.title, "Why left out": i.reason, "Detail": i.detail, "Relevance": f"{i.score:.2f}"}
                    for i in report.left_out
                ]
            ).set_index("Paper")
        )


def show(draft: ReviewDraft) -> None:
    st.header(md_escape(draft.title), anchor=False)
    show_warnings(draft.warnings)
    if draft.refusal:
        st.info(md_escape(draft.refusal), icon=":material/search_off:")
        return
    outline, body = st.columns([1, 3], gap="large")
    with outline, st.container(border=True):
        st.markdown("**Outline**")
        headings = draft.outline or [s.heading for s in draft.sections]
        st.markdown("\n".join(f"{n}. {md_escape(h)}" for n, h in enumerate(headings, 1)))
        with guard("Preparing the downloads"):
            downloads(draft)
    with body:
        links = {r.n: source_link(r.paper_id) for r in draft.references}
        for section in draft.sections:
            st.subheader(md_escape(section.heading), anchor=False)
            st.markdown(prose(section.text, links))
        st.subheader("References", anchor=False)
        st.markdown("\n\n".join(f"{md_escape(f'[{r.n}]')} {md_escape(r.title)}" for r in draft.references))
        with st.container(border=True):
            coverage(draft.coverage)


def downloads(draft: ReviewDraft) -> None:
    download_row(
        [
            ("Markdown", write_review(draft, "md", None), "review.md", "text/markdown", "review_download_md"),
            ("BibTeX", write_review(draft, "bib", None), "review.bib", "application/x-bibtex", "review_download_bib"),
        ]
    )


config = settings()
st.title("Draft a literature review", anchor=False)
st.caption(
    "Give a topic: the draft groups the relevant papers into sections, cites every claim, "
    "and reports which papers it used and which it left out."
)
with st.form("review_form"):
    topic = st.text_input("Topic", key="review_topic", placeholder="e.g. memory-efficient training of LLMs")
    submitted = st.form_submit_button("Draft the review", type="primary", icon=":material/edit_note:", key="review_run")
if submitted:
    if not topic.strip():
        st.warning("Type a topic first.")
    else:
        with guard("Drafting the review"), st.spinner("Gathering papers and writing the sections…"):
            st.session_state["review"] = api.review(topic.strip(), config)
if st.session_state.get("review") is not None:
    with guard("Showing the review"):
        show(st.session_state["review"])
