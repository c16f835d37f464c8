"""The LLM engine: prompts and verification against a recording fake, then the real llama.cpp server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag import prompts
from rag.api import ask, ask_stream, get_retriever
from rag.citations import parse_markers
from rag.config import Settings
from rag.llm import LLM
from rag.models import Answer
from tests.servers import (
    LLAMA_TOP_K,
    SECRET,
    FakeLLM,
    assert_well_formed,
    cli_env,
    llama_settings,
    llm_settings,
    run_cli,
    source_sentences,
)

# NOTE: the server fixtures live in tests/servers.py; this makes pytest see them here.


QUESTION = "How does LookupViT reduce the inference cost of vision transformers?"


def retrieved_ids(settings: Settings, question: str = QUESTION) -> set[str]:
    return {h.paper_id for h in get_retriever(settings).search(question, k=settings.top_k)}


def stream(question: str, settings: Settings) -> tuple[list[str], Answer]:
    items = list(ask_stream(question, settings))
    assert isinstance(items[-1], Answer)
    assert all(isinstance(i, str) for i in items[:-1])
    return [str(i) for i in items[:-1]], items[-1]


def mixed_reply(body: dict[str, Any]) -> str:
    """A model that quotes source 1 correctly, invents a claim for source 2, and cites a source 9."""
    first = source_sentences(body["messages"][-1]["content"], 1).split(". ")[0].rstrip(".")
    return f"{first} [1]. Quantum bananas cure insomnia in 97% of cats [2]. This is confirmed by [9]."


def test_fake_endpoint_answer_is_verified_and_flagged(bundled: Settings, fake_llm: FakeLLM) -> None:
    settings = llm_settings(bundled, fake_llm.play(mixed_reply).base_url)
    pieces, answer = stream(QUESTION, settings)
    assert len(pieces) > 3 and "".join(pieces).endswith("[9].")
    assert answer.engine == "llm:smollm2" and not answer.refused
    assert "[9]" not in answer.answer
    assert [c.n for c in answer.citations] == [1, 2]
    assert [c.supported for c in answer.claims] == [True, False, False]
    assert_well_formed(answer, retrieved_ids(settings))
    assert answer.usage["prompt_tokens"] == 321 and answer.usage["cost_usd"] > 0
    assert answer.prompt["name"] == "answer" and len(answer.prompt["system"]) == 12


def test_prompt_fences_numbered_sources_and_states_the_rules(bundled: Settings, fake_llm: FakeLLM) -> None:
    ask(QUESTION, llm_settings(bundled, fake_llm.play("LookupViT compresses tokens [1].").base_url))
    [request] = fake_llm.completions
    system, user = request.messages
    assert system["role"] == "system" and user["role"] == "user"
    for fragment in (prompts.SOURCES_ARE_DATA, prompts.CITATION_FORMAT, prompts.CANNOT_ANSWER):
        assert fragment in system["content"]
    assert QUESTION in user["content"]
    for n in range(1, 6):
        assert source_sentences(user["content"], n)
    assert request.body["stream"] is True and request.body["max_tokens"] == 128


def test_model_saying_it_cannot_answer_is_a_refusal(bundled: Settings, fake_llm: FakeLLM) -> None:
    answer = ask(QUESTION, llm_settings(bundled, fake_llm.play(prompts.CANNOT_ANSWER).base_url))
    assert answer.refused and answer.related and not answer.citations


def test_complete_counts_usage_and_cost(fake_llm: FakeLLM) -> None:
    settings = Settings(openai_base_url=fake_llm.play('{"cells": {}}').base_url, llm_model="m")
    llm = LLM(settings)
    assert llm.complete([{"role": "user", "content": "hi"}], json_mode=True) == '{"cells": {}}'
    assert fake_llm.completions[0].body["response_format"] == {"type": "json_object"}
    assert (llm.usage.prompt_tokens, llm.usage.completion_tokens, llm.usage.calls) == (321, 12, 1)
    assert llm.usage.cost_usd == pytest.approx((321 * 0.15 + 12 * 0.60) / 1e6)


# --- the real llama.cpp server ------------------------------------------------------------------


@pytest.mark.slow
def test_llama_streams_a_well_formed_answer(bundled: Settings, llama_server: str) -> None:
    settings = llama_settings(bundled, llama_server)
    pieces, answer = stream(QUESTION, settings)
    assert len(pieces) > 1 and answer.engine == "llm:smollm2"
    assert answer.answer.strip() and not any(w.startswith("LLM endpoint") for w in answer.warnings)
    assert_well_formed(answer, retrieved_ids(settings))
    assert answer.usage["prompt_tokens"] > 300 and answer.usage["completion_tokens"] > 0
    assert answer.usage["cost_usd"] > 0 and answer.usage["first_token_s"] is not None


@pytest.mark.slow
def test_cli_ask_with_llama(bundled_home: Path, llama_server: str) -> None:
    env = cli_env(
        RAG_HOME=str(bundled_home), OPENAI_BASE_URL=llama_server, OPENAI_API_KEY=SECRET, RAG_LLM_MODEL="smollm2",
        RAG_LLM_MAX_TOKENS="128", RAG_LLM_CONTEXT_TOKENS="4096", RAG_TOP_K=str(LLAMA_TOP_K),
    )  # fmt: skip
    result = run_cli("ask", QUESTION, "--engine", "llm", "--json", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["engine"] == "llm:smollm2" and answer["usage"]["prompt_tokens"] > 0
    assert set(parse_markers(answer["answer"])) <= {c["n"] for c in answer["citations"]}
    assert SECRET not in result.stdout + result.stderr
