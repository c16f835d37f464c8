"""The settings sidebar: engine, LLM endpoint, model, API key (session only) and retrieval depth."""

from __future__ import annotations

import streamlit as st
from pydantic import SecretStr, ValidationError

from rag.api import Settings, get_settings

ENGINES = {"extractive": "Offline (extractive quotes)", "llm": "LLM (OpenAI-compatible)"}


def _take_key() -> None:
    """Move a typed API key out of the widget, so it is never sent back to the browser."""
    typed = st.session_state.get("set_api_key", "").strip()
    st.session_state["set_api_key"] = ""
    if typed:
        st.session_state["llm_key"] = SecretStr(typed)


def _forget_key() -> None:
    st.session_state.pop("llm_key", None)


def _defaults() -> Settings | None:
    try:
        return get_settings()
    except ValidationError:
        return None  # NOTE: ui.common.settings() reports the invalid environment on the page


def render() -> None:
    """Draw the settings; their values live in st.session_state under `set_*` keys."""
    base = _defaults() or Settings.model_construct()
    with st.sidebar:
        st.header("Settings", anchor=False)
        st.radio(
            "Answer engine",
            list(ENGINES),
            index=list(ENGINES).index(base.engine),
            format_func=ENGINES.__getitem__,
            key="set_engine",
            help="Offline quotes the answering sentences verbatim; an LLM writes prose, and every "
            "claim is still checked against the cited abstracts.",
        )
        llm = st.session_state.get("set_engine") == "llm"
        st.text_input(
            "LLM base URL",
            value=base.openai_base_url or "",
            key="set_base_url",
            placeholder="https://api.openai.com/v1",
            help="Any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp). Empty means OpenAI.",
            disabled=not llm,
        )
        st.text_input("LLM model", value=base.llm_model, key="set_model", disabled=not llm)
        st.text_input(
            "API key",
            type="password",
            key="set_api_key",
            on_change=_take_key,
            placeholder="kept in this browser session only",
            help="Used for this session only: never saved to disk, never shown again.",
            disabled=not llm,
        )
        if st.session_state.get("llm_key") is not None:
            st.caption(":material/key: An API key is set for this session.")
            st.button("Forget the key", key="set_forget_key", on_click=_forget_key)
        elif llm and base.openai_api_key is not None:
            st.caption(":material/key: Using the API key from the environment.")
        st.slider(
            "Papers retrieved per question",
            min_value=1,
            max_value=20,
            value=min(base.top_k, 20),
            key="set_top_k",
            help="More papers give the answer more to draw on, and take a little longer.",
        )
