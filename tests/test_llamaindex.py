"""The llama-index retriever and query engine over our paper retrieval, with llama-index's own OpenAILike LLM."""

from __future__ import annotations

import pytest
from llama_index.core import Settings as LlamaSettings
from llama_index.core.base.response.schema import Response
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.llms.openai_like import OpenAILike

from rag.config import Settings
from rag.llamaindex import PaperRetriever, query_engine
from tests.servers import LLAMA_TOP_K, FakeLLM
from tests.test_package import python_example

QUESTION = "What throughput gain does Zero Bubble report over 1F1B?"
ZERO_BUBBLE = "zero-bubble-pipeline-parallelism-0b5de4f8"
LOCAL_URL = "http://127.0.0.1:8080/v1"

# NOTE: the README's llama-index example, run as written against the llama.cpp server (LOCAL_URL swapped for its).
README_SNIPPET = python_example("**llama-index.**")


def local_llm(url: str) -> OpenAILike:
    return OpenAILike(
        api_base=url, api_key="sk-local", model="smollm2", is_chat_model=True, context_window=4096,
        max_tokens=64, timeout=120, max_retries=0,
    )  # fmt: skip


@pytest.mark.parametrize("k", [1, 3, 7])
def test_retriever_ranks_zero_bubble_first_with_its_metadata(bundled: Settings, k: int) -> None:
    nodes = PaperRetriever(bundled, k=k).retrieve(QUESTION)
    assert len(nodes) == k and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    scores = [n.score or 0.0 for n in nodes]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    top = nodes[0].node
    assert top.node_id == ZERO_BUBBLE and top.metadata["paper_id"] == ZERO_BUBBLE
    assert top.metadata["title"] == "Zero Bubble Pipeline Parallelism" and top.metadata["year"] is None
    assert "1F1B" in top.metadata["matched_sentence"] and top.metadata["matched_sentence"] in top.get_content()
    assert top.get_content().startswith("Zero Bubble Pipeline Parallelism\n\nPipeline parallelism is one")


def test_the_llm_sees_each_abstract_once_under_its_paper_id(bundled: Settings, fake_llm: FakeLLM) -> None:
    engine = query_engine(local_llm(fake_llm.play("Up to 23% [1].").base_url), bundled, k=2)
    response = engine.query(QUESTION)
    assert str(response) == "Up to 23% [1]."
    prompt = "\n".join(m["content"] for m in fake_llm.completions[0].messages)
    for node in response.source_nodes:
        assert node.node.get_content(MetadataMode.LLM).startswith(f"paper_id: {node.node.node_id}\n\n")
        assert prompt.count(node.node.get_content()) == 1 and f"paper_id: {node.node.node_id}" in prompt
    assert "matched_sentence" not in prompt and "title:" not in prompt


def test_the_module_leaves_llama_index_global_settings_alone(bundled: Settings, fake_llm: FakeLLM) -> None:
    query_engine(local_llm(fake_llm.base_url), bundled, k=1).query(QUESTION)
    # NOTE: the private fields, as reading Settings.llm would itself build the OpenAI default.
    assert LlamaSettings._llm is None and LlamaSettings._embed_model is None


def test_query_engine_without_an_llm_fails_before_llama_index_reaches_for_openai(bundled: Settings) -> None:
    with pytest.raises(TypeError, match="needs a llama-index LLM"):
        query_engine(None, bundled)  # type: ignore[arg-type]
    assert LlamaSettings._llm is None


@pytest.mark.slow
def test_llama_index_query_engine_answers_from_zero_bubble_with_llama(bundled: Settings, llama_server: str) -> None:
    response = query_engine(local_llm(llama_server), bundled, k=LLAMA_TOP_K).query(QUESTION)
    assert isinstance(response, Response) and isinstance(response.response, str) and response.response.strip()
    ids = [n.node.metadata["paper_id"] for n in response.source_nodes]
    assert ids[0] == ZERO_BUBBLE and len(ids) == LLAMA_TOP_K


@pytest.mark.slow
def test_readme_snippet_runs_against_llama(
    bundled: Settings, llama_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert LOCAL_URL in README_SNIPPET
    exec(README_SNIPPET.replace(LOCAL_URL, llama_server), {})
    answer, ids = capsys.readouterr().out.rstrip("\n").rsplit("\n", 1)
    assert answer.strip() and ids.startswith(f"['{ZERO_BUBBLE}'")
