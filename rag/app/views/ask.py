"""Ask: a cited chat over the abstracts, with sources, verification marks and a Markdown download."""

from __future__ import annotations

import re
from collections.abc import Iterator

import streamlit as st

from rag import api
from rag.api import CLOSEST_PAPERS, Retriever, Settings
from rag.app import conversation
from rag.app.common import (
    guard,
    highlight,
    markers,
    retriever,
    settings,
    show_paper,
    show_warnings,
    source_link,
)
from rag.export import answer_markdown, md_escape, read_as
from rag.models import Answer, Turn

EXAMPLES = (
    "What does WebLLM use for GPU acceleration in the browser?",
    "How does Pathways schedule computations on thousands of accelerators?",
    "Which papers reduce the memory of LLM training?",
)


def engine_badge(answer: Answer) -> None:
    if answer.engine.startswith("llm:"):
        st.badge(f"LLM · {md_escape(answer.engine[4:])}", icon=":material/smart_toy:", color="violet")
    else:
        st.badge("Offline · extractive quotes", icon=":material/format_quote:", color="gray")


def answer_body(answer: Answer) -> str:
    """The answer as safe Markdown: markers in blue, claims the verifier rejected in red."""
    unsupported = [re.sub(r"\s*\[\d+\]", "", c.text).rstrip(" .") for c in answer.claims if not c.supported]
    links = {c.n: source_link(c.paper_id, c.quote) for c in answer.citations}
    return markers(highlight(answer.answer, unsupported, color="red"), links)


def show_sources(answer: Answer, papers: Retriever) -> None:
    st.markdown("**Sources**")
    for c in answer.citations:
        mark = ":material/check_circle: supports the claim" if c.supported else ":material/warning: not verified"
        with st.expander(f"**[{c.n}]** {md_escape(c.title)} — {mark}"):
            paper = papers.papers.get(c.paper_id)
            # NOTE: every sentence citing this source is highlighted; extractive claims are verbatim quotes.
            quotes = [c.quote, *(re.sub(r"\s*\[\d+\]", "", cl.text) for cl in answer.claims if c.n in cl.citations)]
            if paper is None:
                st.markdown(f"> {md_escape(c.quote)}")
            else:
                show_paper(paper, quotes)


def show_answer(answer: Answer, i: int, papers: Retriever) -> None:
    """One assistant turn: engine, warnings, answer, sources, download."""
    engine_badge(answer)
    show_warnings(answer.warnings)
    if answer.refused:
        # NOTE: the closest papers are listed below, not named in the text too
        st.info(md_escape(answer.answer.partition(f" {CLOSEST_PAPERS} ")[0]), icon=":material/search_off:")
        if answer.related:
            st.markdown("**Related papers you could read**")
            for hit in answer.related[:5]:
                st.markdown(f"- {md_escape(hit.title)}")
        return
    st.markdown(answer_body(answer))
    if answer.read_as:
        st.caption(md_escape(read_as(answer.read_as)))
    if answer.citations:
        show_sources(answer, papers)
    if answer.draft:
        with st.expander("The model's unverified draft"):
            st.text(answer.draft)  # NOTE: plain text: a model's words are never rendered as Markdown or HTML
    st.download_button(
        "Download as Markdown",
        data=f"## {answer.question}\n\n{answer_markdown(answer)}",
        file_name="answer.md",
        mime="text/markdown",
        icon=":material/download:",
        key=f"ask_download_{i}",
    )


def run(question: str, config: Settings, history: list[Turn]) -> Answer | None:
    """Ask, streaming the LLM's words as they come; None when it failed (an error is shown)."""
    final: list[Answer] = []

    def pieces() -> Iterator[str]:
        for item in api.ask_stream(question, config, history=history):
            if isinstance(item, Answer):
                final.append(item)
            else:
                yield md_escape(item)

    with guard("Answering"):
        if config.engine == "llm" and config.llm_configured:
            draft = st.empty()
            with draft.container():
                st.write_stream(pieces())
            draft.empty()
        else:
            with st.spinner("Reading the abstracts…"):
                list(pieces())
    return final[-1] if final else None


def turns(chat: list[Answer]) -> list[Turn]:
    return [Turn.after(a) for a in chat]


config = settings()
chat = conversation.load(config)
papers = retriever(config)

top = st.columns([4, 1], vertical_alignment="center")
top[0].title("Ask the papers", anchor=False)
if chat and top[1].button("New conversation", icon=":material/add_comment:", key="ask_clear"):
    chat.clear()
    conversation.save(config, chat)
    st.rerun()

if not chat:
    st.markdown(
        f"Ask a question about the **{len(papers.papers)}** indexed abstracts. Every sentence of the answer "
        "cites its paper; open a source to see the supporting sentence highlighted in the abstract."
    )
    for n, example in enumerate(EXAMPLES):
        if st.button(example, icon=":material/lightbulb:", key=f"ask_example_{n}", type="tertiary"):
            st.session_state["ask_pending"] = example

for i, past in enumerate(chat):
    with st.chat_message("user"):
        st.markdown(md_escape(past.question))
    with st.chat_message("assistant"):
        show_answer(past, i, papers)

question = st.chat_input("Ask about the papers…", key="ask_input") or st.session_state.pop("ask_pending", None)
if question:
    with st.chat_message("user"):
        st.markdown(md_escape(question))
    with st.chat_message("assistant"):
        answer = run(question, config, turns(chat))
        if answer is not None:
            chat.append(answer)
            conversation.save(config, chat)
            st.rerun()
