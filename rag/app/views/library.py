"""Library: browse and search the indexed papers, add corpus files, and see the corpus as a topic map."""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from rag import api
from rag.api import Retriever, Settings
from rag.app.common import forget_index, guard, retriever, settings, show_paper
from rag.export import md_escape
from rag.models import IngestReport, Paper, RagError

FORMATS = sorted(suffix.lstrip(".") for suffix in api.FORMATS)
log = logging.getLogger(__name__)


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


def detail(paper: Paper, quotes: Sequence[str] = ()) -> None:
    with st.container(border=True):
        st.markdown(f"#### {md_escape(paper.title)}")
        show_paper(paper, quotes)


def cited_source(papers: Mapping[str, Paper]) -> None:
    """The paper a `[n]` marker in an answer, matrix or review links to, its supporting sentence highlighted."""
    paper_id = st.query_params.get("paper")
    if not paper_id:
        return
    if paper_id not in papers:
        st.warning("The cited paper is no longer in the library.", icon=":material/help:")
        return
    st.caption("Cited source")
    detail(papers[paper_id], [st.query_params.get("quote", "")])


@dataclass
class Upload:
    """Files being indexed on a thread of their own, so that touching another widget (which reruns the page and
    stops its script) never cancels them."""

    names: list[str]
    folder: tempfile.TemporaryDirectory[str]
    done: int = 0
    total: int = 0
    report: IngestReport | None = None
    error: str = ""
    thread: threading.Thread = field(init=False)

    def start(self, paths: list[Path], config: Settings) -> None:
        self.thread = threading.Thread(target=self._ingest, args=(paths, config), daemon=True, name="rag-upload")
        self.thread.start()

    def _ingest(self, paths: list[Path], config: Settings) -> None:
        def progress(done: int, total: int) -> None:
            self.done, self.total = done, total

        try:
            self.report = api.ingest_paths(paths, config, progress=progress)
        except RagError as exc:
            # NOTE: name the file the researcher uploaded, not our temporary folder.
            self.error = str(exc).replace(f"{self.folder.name}/", "")
        except Exception:
            log.exception("adding uploaded files failed")
            self.error = "adding the files failed unexpectedly (the server log has the details)"
        finally:
            self.folder.cleanup()


def add_files(config: Settings) -> None:
    uploads = st.file_uploader(
        "Corpus files",
        type=FORMATS,
        accept_multiple_files=True,
        key="library_upload",
        help="Zotero, Mendeley or EndNote exports (BibTeX, RIS, CSL JSON), PDFs (title and abstract from the first "
        "pages), JSON Lines, JSON, CSV with title and abstract columns, or plain-text pages of title and abstract.",
    )
    if not st.button("Add to library", icon=":material/upload:", key="library_add", disabled=not uploads):
        return
    folder = tempfile.TemporaryDirectory(prefix="rag-upload-")
    paths = []
    for upload in uploads or []:
        path = Path(folder.name) / Path(upload.name).name  # NOTE: keep the original name; errors quote it
        path.write_bytes(upload.getvalue())
        paths.append(path)
    job = Upload(names=[p.name for p in paths], folder=folder)
    job.start(paths, config)
    st.session_state["library_job"] = job
    st.rerun()


@st.fragment(run_every=1.0)
def upload_progress() -> None:
    """The running upload's progress, redrawn every second; the whole page reruns once it has finished."""
    job: Upload | None = st.session_state.get("library_job")
    if job is None:
        return
    if job.thread.is_alive():
        what = f"Embedding papers: {job.done} of {job.total}" if job.total else "Reading the files…"
        st.progress(job.done / job.total if job.total else 0.0, text=f"{what} ({', '.join(job.names)})")
        st.caption("You can go on using the app; the files are added in the background.")
        return
    del st.session_state["library_job"]
    if job.error:
        problem = md_escape(job.error)
        st.session_state["library_error"] = f"Nothing was added. {problem}. Fix the file and upload it again."
    elif job.report is not None:
        report = job.report
        forget_index()
        st.session_state["library_notice"] = (
            f"Added {report.added}, updated {report.updated}, unchanged {report.unchanged} papers; "
            f"the library now holds {report.total_papers}."
            + (f" Skipped: {md_escape(str(report.skipped))}." if report.skipped else "")
        )
    st.rerun(scope="app")  # NOTE: redraw the table and map from the changed index


@st.cache_data(show_spinner="Projecting the papers…")
def _points(key: tuple[str, tuple[str, ...]], _config: Settings) -> list[dict[str, object]]:
    return api.topic_map(_config)


def topic_map(config: Settings, papers: Mapping[str, Paper]) -> None:
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
    if len(points) < len(papers):
        st.caption(f"The map shows a sample of {len(points):,} of the {len(papers):,} papers; search finds them all.")


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
if problem := st.session_state.pop("library_error", None):
    st.error(problem, icon=":material/error:")
cited_source(papers)
with st.expander("Add papers", icon=":material/upload_file:", expanded=not papers or "library_job" in st.session_state):
    if "library_job" in st.session_state:
        upload_progress()
    else:
        add_files(config)

browse, shape = st.tabs(["Papers", "Topic map"], key="library_view", on_change="rerun")
if browse.open:
    with browse:
        browse_papers(index)
if shape.open:
    with shape, guard("Drawing the topic map"):
        topic_map(config, papers)
