"""The Streamlit pages, headless with AppTest, against real small indexes (offline)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag.compare import DEFAULT_ASPECTS, NOT_STATED
from rag.config import Settings
from tests.servers import SECRET, FakeLLM, source_sentences

# NOTE: the fake LLM endpoint fixture lives in tests/servers.py; this makes pytest see it here.

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 90  # NOTE: the first run of a test process loads the embedding model
HOSTILE_TITLE = "<img src=x onerror=alert(1)> Zebra routing"
HOSTILE_ABSTRACT = (
    "Quantum zebra routing improves lattice throughput by 40% on benchmark graphs. "
    "Payload: <script>alert(1)</script> and [a link](javascript:alert(1)) and $x^2$."
)


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def nodes(at: AppTest) -> Iterator[object]:
    yield from at.main
    yield from at.sidebar


def no_failures(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def ask(at: AppTest, question: str) -> AppTest:
    return at.chat_input(key="ask_input").set_value(question).run()


@pytest.fixture()
def small(tmp_path: Path, isolated: Path) -> Path:
    """An index of one hostile paper (HTML and Markdown in title and abstract), in the isolated RAG_HOME."""
    from rag.api import ingest_paths
    from rag.config import Settings

    corpus = tmp_path / "hostile.jsonl"
    corpus.write_text(json.dumps({"title": HOSTILE_TITLE, "abstract": HOSTILE_ABSTRACT}) + "\n")
    ingest_paths([corpus], Settings(home=isolated))
    return isolated


def test_ask_answers_with_citations_and_sources(bundled: object) -> None:
    at = ask(app(), "What does WebLLM use for GPU acceleration in the browser?")
    no_failures(at)
    body = "\n".join(m.value for m in at.markdown)
    assert "WebGPU" in body
    webllm = next(c for c in at.session_state["chat"][0].citations if c.title.startswith("WebLLM"))
    assert rf"[**\[{webllm.n}\]**](library?paper={webllm.paper_id}&quote=" in body  # the marker opens its source
    sources = [e.label for e in at.expander]
    assert any("WebLLM" in label and "supports the claim" in label for label in sources)
    assert ":orange-background[" in body  # the quote highlighted inside its abstract
    assert at.get("badge") or any("Offline" in m.value for m in at.markdown)
    assert at.download_button(key="ask_download_0").proto.label == "Download as Markdown"


def test_an_answer_says_how_search_read_everyday_words(bundled: object) -> None:
    at = ask(app(), "Which papers build custom reprogrammable chip logic for big text AIs on small devices?")
    no_failures(at)
    said = [c.value for c in at.caption if "Searched with" in c.value]
    assert said and "reprogrammable chip" in said[0] and "FPGA" in said[0], [c.value for c in at.caption]
    assert any(c.title.startswith("AccLLM") for c in at.session_state["chat"][0].citations)


def test_a_markers_link_opens_the_paper_with_its_sentence_highlighted(bundled: object) -> None:
    from urllib.parse import parse_qsl, urlsplit

    answer = ask(app(), "What does WebLLM use for GPU acceleration in the browser?")
    link = re.search(r"\]\*\*\]\((library\?[^)]+)\)", "\n".join(m.value for m in answer.markdown))
    assert link
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("rag/app/views/library.py")
    at.query_params.update(dict(parse_qsl(urlsplit(link.group(1)).query)))
    at.run()
    no_failures(at)
    assert any(c.value == "Cited source" for c in at.caption)
    shown = "\n".join(m.value for m in at.markdown)
    assert "#### WebLLM" in shown and ":orange-background[**" in shown


def test_ask_keeps_the_conversation_for_follow_ups(bundled: object) -> None:
    at = ask(app(), "What does WebLLM use for GPU acceleration in the browser?")
    at = ask(at, "What about its CPU computation?")
    no_failures(at)
    chat = at.session_state["chat"]
    assert [a.question for a in chat][1] == "What about its CPU computation?"
    assert any(c.title.startswith("WebLLM") for c in chat[1].citations)
    assert len(at.chat_message) == 4


def test_an_off_topic_refusal_says_so_and_lists_no_unrelated_papers(bundled: object) -> None:
    at = ask(app(), "What is the boiling point of water on Mars?")
    no_failures(at)
    assert "do not answer" in at.info[0].value and "No indexed paper is about it" in at.info[0].value
    assert not any("Related papers" in m.value for m in at.markdown)


def test_a_refusal_points_to_the_paper_that_writes_the_name_asked_about(bundled: object) -> None:
    at = ask(app(), "What accuracy does MobileVLM reach?")
    no_failures(at)
    shown = at.info[0].value
    assert "do not answer" in shown and "“MobileVLM” is written only in “ML\\-Mamba" in shown  # NOTE: escaped
    assert "closest papers" not in shown  # NOTE: listed below it, not named twice
    assert any("ML\\-Mamba" in m.value for m in at.markdown)


def test_llm_fallback_is_announced_and_the_key_is_never_shown_back(
    bundled: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "0")
    secret = "sk-test-never-echo-4242"
    at = app()
    at.radio(key="set_engine").set_value("llm").run()
    at.text_input(key="set_base_url").input("http://127.0.0.1:9").run()  # NOTE: nothing listens on port 9
    at.text_input(key="set_api_key").input(secret).run()
    assert at.text_input(key="set_api_key").value == ""
    assert all(secret not in str(getattr(n, "proto", "")) for n in nodes(at))
    assert at.session_state["llm_key"].get_secret_value() == secret
    at = ask(at, "What does WebLLM use for GPU acceleration in the browser?")
    assert "did not answer, so this was written offline" in at.warning[0].value and len(at.warning) == 1
    assert "APIConnectionError" in "\n".join(t.value for t in at.expander[0].text)  # the detail, behind an expander
    assert all(secret not in str(getattr(n, "proto", "")) for n in nodes(at))
    assert not any(secret.encode() in p.read_bytes() for p in Path.cwd().rglob("*") if p.is_file())


def test_hostile_text_renders_as_text(small: Path) -> None:
    at = ask(app(), "What does quantum zebra routing improve?")
    no_failures(at)
    assert not at.get("html")
    markdown = [n for n in nodes(at) if getattr(n, "type", "") == "markdown"]
    assert markdown and all(not m.proto.allow_html for m in markdown)
    shown = "\n".join([m.value for m in markdown] + [e.label for e in at.expander])
    assert r"\<script\>" in shown and r"\<img src\=x onerror\=alert\(1\)\>" in shown
    assert not re.search(r"(?<!\\)<(script|img)", shown) and "](javascript" not in shown


def test_library_lists_and_searches_papers(bundled: object) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("rag/app/views/library.py").run()
    assert len(at.dataframe[0].value) == 168
    at.text_input(key="library_search").input("in-browser LLM inference with WebGPU").run()
    no_failures(at)
    titles = at.dataframe[0].value["title"].tolist()
    assert titles[0].startswith("WebLLM")


def finish_upload(at: AppTest, timeout: float = 120) -> AppTest:
    """Rerun the page until the upload, indexed on its own thread, has said how it went."""
    deadline = time.monotonic() + timeout
    while not (at.success or at.error) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    return at


def test_library_upload_of_a_bad_file_shows_a_clear_error(bundled: object) -> None:
    at = app().switch_page("rag/app/views/library.py").run()
    at.file_uploader(key="library_upload").set_value(("broken.jsonl", b'{"title": "x", "abstract"\n', "text/plain"))
    at.run()
    finish_upload(at.button(key="library_add").click().run())
    assert len(at.error) == 1
    message = at.error[0].value
    assert "broken\\.jsonl\\:1" in message and "rag-upload-" not in message
    assert "Nothing was added" in message


def test_library_upload_adds_papers(small: Path, tmp_path: Path) -> None:
    at = app().switch_page("rag/app/views/library.py").run()
    assert len(at.dataframe[0].value) == 1
    record = {"title": "Sparse lemur attention", "abstract": "Lemur attention is sparse and fast."}
    at.file_uploader(key="library_upload").set_value(("new.jsonl", json.dumps(record).encode(), "text/plain"))
    at.run()
    at.button(key="library_add").click().run()
    at.text_input(key="library_search").input("lemur").run()  # NOTE: touching a widget must not cancel the upload
    finish_upload(at)
    no_failures(at)
    assert "Added 1" in at.success[0].value
    at.text_input(key="library_search").input("").run()
    assert len(at.dataframe[0].value) == 2


def paper_ids(*prefixes: str) -> list[str]:
    from rag.api import papers

    return [p.paper_id for p in papers() if p.title.startswith(prefixes)]


def test_compare_two_papers_gives_a_cited_matrix(bundled: object) -> None:
    at = app().switch_page("rag/app/views/compare.py").run()
    at.multiselect(key="compare_papers").set_value(paper_ids("WebLLM", "Pathways"))
    at.button(key="compare_run").click().run()
    no_failures(at)
    matrix = at.table[0].value
    assert sorted(matrix.columns) == ["[1] Pathways", "[2] WebLLM"]
    assert list(matrix.index) == list(DEFAULT_ASPECTS)
    for n, column in enumerate(matrix.columns, 1):
        assert matrix[column].str.endswith((f"[{n}]", NOT_STATED)).all()
    assert {d.key for d in at.download_button} == {"compare_download_md", "compare_download_csv"}
    at.toggle(key="compare_quotes").set_value(True).run()
    assert any(label.startswith("WebLLM") for label in (e.label for e in at.expander))


def test_compare_asks_for_two_papers(bundled: object) -> None:
    at = app().switch_page("rag/app/views/compare.py").run()
    at.multiselect(key="compare_papers").set_value(paper_ids("WebLLM"))
    at.button(key="compare_run").click().run()
    assert "at least two papers" in at.warning[0].value
    assert at.session_state["comparison"] is None if "comparison" in at.session_state else True


def test_the_request_box_example_compares_papers_on_its_topic(bundled: object) -> None:
    at = app().switch_page("rag/app/views/compare.py").run()
    example = at.text_input(key="compare_request").placeholder.removeprefix("e.g. ")
    at.text_input(key="compare_request").input(example)
    at.button(key="compare_run").click().run()
    no_failures(at)
    from rag.api import papers as library

    rows = at.session_state["comparison"].rows
    abstracts = {p.paper_id: p.abstract for p in library()}
    # NOTE: each on its topic by what its abstract says: "Enabling High-Sparsity Foundational Llama Models" is about
    # sparse LLMs and reports "inference acceleration of up to 3x on CPUs"
    assert len(rows) >= 2 and all(re.search(r"inference|serving", abstracts[r.paper_id], re.I) for r in rows)


def test_a_request_naming_only_unknown_papers_says_so_once_and_shows_no_empty_table(bundled: object) -> None:
    at = app().switch_page("rag/app/views/compare.py").run()
    at.text_input(key="compare_request").input("FlexGen and PowerInfer: how does each run big models on one GPU?")
    at.button(key="compare_run").click().run()
    no_failures(at)
    assert [w.value.replace("\\", "") for w in at.warning] == [  # shown markdown-escaped
        "not compared: 'FlexGen' matches no indexed paper",
        "not compared: 'PowerInfer' matches no indexed paper",
    ]
    assert "Nothing to compare" in at.info[0].value
    assert not at.table and not at.download_button


def test_review_drafts_sections_references_and_coverage(bundled: object) -> None:
    at = app().switch_page("rag/app/views/review.py").run()
    at.text_input(key="review_topic").input("efficient LLM inference")
    at.button(key="review_run").click().run()
    no_failures(at)
    body = "\n".join(m.value for m in at.markdown)
    assert "**Outline**" in body and "[**\\[1\\]**](library?paper=" in body  # markers open their sources
    assert "candidate papers cited" in body
    left_out = at.table[0].value  # a static table: every reason shown whole
    assert list(left_out.columns) == ["Why left out", "Detail", "Relevance"] and left_out["Detail"].str.len().min() > 10
    assert len(at.subheader) >= 3 and at.subheader[-1].value == "References"
    assert {d.key for d in at.download_button} == {"review_download_md", "review_download_bib"}


def test_review_of_a_topic_the_library_does_not_cover_says_so(bundled: object) -> None:
    at = app().switch_page("rag/app/views/review.py").run()
    at.text_input(key="review_topic").input("protein folding with diffusion models")
    at.button(key="review_run").click().run()
    no_failures(at)
    assert "No indexed paper is about" in at.info[0].value
    assert not at.download_button and not [s for s in at.subheader if s.value == "References"]


def test_library_topic_map_is_drawn_by_theme(bundled: object) -> None:
    at = app().switch_page("rag/app/views/library.py").run()
    assert not at.get("vega_lite_chart")  # NOTE: drawn only when its tab is open
    at.session_state["library_view"] = "Topic map"
    at.run()
    no_failures(at)
    chart = at.get("vega_lite_chart")[0].proto
    assert '"theme"' in chart.spec and '"title"' in chart.spec


def test_llm_answer_streams_with_the_session_key_and_renders_as_text(bundled: object, fake_llm: FakeLLM) -> None:
    def reply(body: dict[str, object]) -> str:
        first = source_sentences(str(body["messages"][-1]["content"]), 1).split(". ")[0]  # type: ignore[index]
        # NOTE: the markup sits inside a supported sentence, so the verified answer carries it
        return f"{first.rstrip('.')} <img src=x onerror=alert(document.cookie)> [1]."

    fake_llm.play(reply)
    at = app()
    at.radio(key="set_engine").set_value("llm").run()
    at.text_input(key="set_base_url").input(fake_llm.base_url).run()
    at.text_input(key="set_api_key").input(SECRET).run()
    at = ask(at, "What does WebLLM use for GPU acceleration in the browser?")
    no_failures(at)
    assert fake_llm.completions[0].body["stream"] is True
    assert fake_llm.completions[0].headers["authorization"] == f"Bearer {SECRET}"
    assert at.session_state["chat"][0].engine == "llm:gpt-4o-mini"
    assert any("LLM · gpt" in m.value for m in at.markdown)
    body = "\n".join(m.value for m in at.markdown)
    assert r"\<img src\=x onerror\=alert\(document\.cookie\)\>" in body and not re.search(r"(?<!\\)<img", body)
    assert all(secret_free(n) for n in nodes(at))


def secret_free(node: object) -> bool:
    return SECRET not in str(getattr(node, "proto", ""))


WEBLLM = "What does WebLLM use for GPU acceleration in the browser?"


def test_the_conversation_survives_a_reload_and_keeps_no_key(bundled: Settings) -> None:
    at = app()
    at.radio(key="set_engine").set_value("llm").run()
    at.text_input(key="set_api_key").input("sk-test-never-saved-4242").run()
    at.radio(key="set_engine").set_value("extractive").run()
    at = ask(at, WEBLLM)
    no_failures(at)
    cid = at.query_params["c"]
    cid = cid[0] if isinstance(cid, list) else cid
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params["c"] = cid
    reloaded.run()
    no_failures(reloaded)
    assert [a.question for a in reloaded.session_state["chat"]] == [WEBLLM]
    assert len(reloaded.chat_message) == 2
    saved = (bundled.home / "conversations" / f"{cid}.json").read_text()
    assert "WebGPU" in saved and "sk-test-never-saved-4242" not in saved
    other = AppTest.from_file(APP, default_timeout=TIMEOUT)
    other.query_params["c"] = "../../etc/passwd"
    other.run()
    no_failures(other)
    assert other.session_state["chat"] == []
