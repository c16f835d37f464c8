"""Library: browse and search the indexed papers, add corpus files, and see the corpus as a topic map."""

from __future__ import annotations

import tempfile
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from rag import api
from rag.api import Retriever, Settings
from rag.app.common import forget_index, guard, md_escape, retriever, settings, show_paper
from rag.models import Paper, RagError

FORMATS = ["txt", "jsonl", "json", "csv", "bib"]


def table(papers: list[Paper], scores: dict[str, float] | None = None) -> pd.DataFrame:
    rows = [
        {
            "paper_id": p.paper_id,
            **({"match": scores[p.paper_id]} if scores else {}),
            "title": p.title,
            "abstract": p.abstract[:240] + ("…" if len(p.abstract) > 240 else ""),
            "authors": ", ".join(p.authors[:3]) + (" et al." if len(p.authors) > 3 else ""),
            "year": p.year,
            "source": Path(p.source).name,
            "url": p.url,
        }
        for p in papers
    ]
    frame = pd.DataFrame(
        rows,
        columns=["paper_id", *(["match"] if scores else []), "title", "abstract", "authors", "year", "source", "url"],
    )
    # NOTE: a corpus without authors, years or links should not show columns of "None".
    return frame.loc[:, [c for c in frame.columns if frame[c].replace("", None).notna().any() or c == "paper_id"]]


def detail(paper: Paper) -> None:
    with st.container(border=True):
        st.markdown(f"#### {md_escape(paper.title)}")
        show_paper(paper)


def add_files(config: Settings) -> None:
    uploads = st.file_uploader(
        "Corpus files",
        type=FORMATS,
        accept_multiple_files=True,
        key="library_upload",
        help="Plain-text pages of title + abstract, JSON Lines, JSON, CSV (title, abstract columns) or BibTeX.",
    )
    if not st.button("Add to library", icon=":material/upload:", key="library_add", disabled=not uploads):
        return
    bar = st.progress(0.0, text="Reading the files…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Embedding papers: {done} of {total}")

    with tempfile.TemporaryDirectory(prefix="rag-upload-") as tmp, guard("Adding the files"):
        paths = []
        for upload in uploads or []:
            path = Path(tmp) / Path(upload.name).name  # NOTE: keep the original name; errors quote it
            path.write_bytes(upload.getvalue())
            paths.append(path)
        try:
            report = api.ingest_paths(paths, config, progress=progress)
        except RagError as exc:
            bar.empty()
            # NOTE: name the file the researcher uploaded, not our temporary folder.
            problem = md_escape(str(exc).replace(f"{tmp}/", ""))
            st.error(f"Nothing was added. {problem}. Fix the file and upload it again.", icon=":material/error:")
            return
        forget_index()
        st.session_state["library_notice"] = (
            f"Added {report.added}, updated {report.updated}, unchanged {report.unchanged} papers; "
            f"the library now holds {report.total_papers}."
            + (f" Skipped: {md_escape(str(report.skipped))}." if report.skipped else "")
        )
    if "library_notice" in st.session_state:
        st.rerun()  # NOTE: redraw the table and map from the changed index


@st.cache_data(show_spinner="Projecting the papers…")
def _points(key: tuple[str, tuple[str, ...]], _config: Settings) -> list[dict[str, object]]:
    return api.topic_map(_config)


def topic_map(config: Settings, papers: dict[str, Paper]) -> None:
    points = pd.DataFrame(_points((config.index_name, tuple(sorted(papers))), config))
    if points.empty:
        st.info("The library is empty: add papers first.")
        return
    pick = alt.selection_point(fields=["paper_id"], name="pick")
    chart = (
        alt.Chart(points)
        .mark_circle(size=90, opacity=0.8)
        .encode(
            x=alt.X("x", axis=None),
            y=alt.Y("y", axis=None),
            # NOTE: ten distinct hues; the default palette pairs light and dark shades of one hue
            color=alt.Color(
                "theme:N",
                title="Theme",
                scale=alt.Scale(scheme="tableau10"),
                legend=alt.Legend(orient="bottom", columns=3, labelLimit=320),
            ),
            tooltip=[alt.Tooltip("title:N", title="Title"), alt.Tooltip("theme:N", title="Theme")],
        )
        .add_params(pick)
        .properties(height=520)
    )
    state = st.altair_chart(chart, on_select="rerun", key="library_map", width="stretch")
    chosen = state.selection.get("pick") if state else None
    if chosen and chosen[0].get("paper_id") in papers:
        detail(papers[chosen[0]["paper_id"]])
    else:
        st.caption("Hover a point for its title; click it to open the paper.")


def browse_papers(index: Retriever) -> None:
    papers = index.papers
    query = st.text_input("Search", key="library_search", placeholder="Search titles and abstracts by meaning…")
    if query.strip():
        hits = []
        with guard("Searching"):
            hits = index.search(query, k=25)
        shown = [papers[h.paper_id] for h in hits if h.paper_id in papers]
        frame = table(shown, {h.paper_id: h.score for h in hits})
    else:
        frame = table(sorted(papers.values(), key=lambda p: p.title.lower()))
    selection = st.dataframe(
        frame,
        key="library_table",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        height=460,
        column_order=[c for c in frame.columns if c != "paper_id"],
        column_config={
            "match": st.column_config.ProgressColumn("Match", min_value=0.0, max_value=1.0, format="%.2f"),
            "title": st.column_config.TextColumn("Title", width=300),
            "abstract": st.column_config.TextColumn("Abstract", width=520),
            "year": st.column_config.NumberColumn("Year", format="%d"),
            "authors": st.column_config.TextColumn("Authors"),
            "source": st.column_config.TextColumn("File"),
            "url": st.column_config.LinkColumn("Link", display_text="open"),
        },
    )
    rows = selection.selection.rows if selection else []
    if rows:
        detail(papers[frame.iloc[rows[0]]["paper_id"]])
    else:
        st.caption("Select a row to read the whole abstract.")


config = settings()
index = retriever(config)
papers = index.papers

st.title("Library", anchor=False)
st.caption(f"{len(papers)} papers indexed")
if notice := st.session_state.pop("library_notice", None):
    st.success(notice, icon=":material/check_circle:")
with st.expander("Add papers", icon=":material/upload_file:", expanded=not papers):
    add_files(config)

browse, shape = st.tabs(["Papers", "Topic map"], key="library_view", on_change="rerun")
if browse.open:
    with browse:
        browse_papers(index)
if shape.open:
    with shape, guard("Drawing the topic map"):
        topic_map(config, papers)
