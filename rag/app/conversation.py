"""The Ask page's conversation, kept per browser tab across reloads: its id rides in the page's URL (`?c=…`) and its
answers are saved under RAG_HOME/conversations. Only questions and answers are saved: never settings or keys."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import streamlit as st
from pydantic import TypeAdapter, ValidationError

from rag.api import Settings
from rag.models import Answer

PARAM = "c"
_ID = re.compile(r"[0-9a-f]{32}")
_ANSWERS = TypeAdapter(list[Answer])


def _file(config: Settings) -> Path:
    cid = st.query_params.get(PARAM, "")
    if not _ID.fullmatch(cid):  # NOTE: a fresh tab, or an id someone typed: never a path
        cid = secrets.token_hex(16)
        st.query_params[PARAM] = cid
    return config.home / "conversations" / f"{cid}.json"


def load(config: Settings) -> list[Answer]:
    """This tab's answers so far: from the session, else from the file a reload left behind."""
    if "chat" not in st.session_state:
        path = _file(config)
        try:
            st.session_state["chat"] = _ANSWERS.validate_json(path.read_bytes()) if path.is_file() else []
        except (OSError, ValidationError):
            st.session_state["chat"] = []  # NOTE: unreadable history starts a new conversation, not an error
    chat: list[Answer] = st.session_state["chat"]
    return chat


def save(config: Settings, chat: list[Answer]) -> None:
    """Write the conversation atomically; a full disk loses the history, never the answer on screen."""
    path = _file(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_bytes(_ANSWERS.dump_json(chat))
        os.replace(partial, path)
    except OSError:
        pass
