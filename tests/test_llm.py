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


def test_a_reply_with_unsupported_claims_is_retried_then_replaced_by_quotes(
    bundled: Settings, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(bundled, fake_llm.play(mixed_reply).base_url)
    pieces, answer = stream(QUESTION, settings)
    assert len(pieces) > 3 and "".join(pieces).endswith("[9].")
    assert len(fake_llm.completions) == 2  # the draft, then one strict retry
    assert "Example." in fake_llm.completions[1].messages[0]["content"]
    assert answer.engine == "extractive" and not answer.refused and answer.citations
    assert all(c.supported for c in answer.claims)
    assert answer.warnings[0].startswith("The model's answer could not be verified against the abstracts (1 of its 2")
    assert "Quantum bananas" in answer.draft and "Quantum bananas" not in answer.answer
    assert_well_formed(answer, retrieved_ids(settings))


def verified_or_labelled(answer: Answer) -> None:
    """The model's answer, every sentence supported; or the extractive answer, labelled, the draft kept aside."""
    assert not answer.refused and any(c.supported for c in answer.claims)
    assert all(c.supported for c in answer.claims if c.content)
    if answer.engine == "extractive":
        assert "could not be verified against the abstracts" in answer.warnings[0] and answer.draft
    else:
        assert answer.engine == "llm:smollm2"


def honest_reply(body: dict[str, Any]) -> str:
    """What a strong model writes: prose built from the sources' own statements, each cited."""
    message = body["messages"][-1]["content"]
    first = source_sentences(message, 1).split(". ")
    return f"{first[0].rstrip('.')} [1]. {first[1].rstrip('.')} [1]."


def test_a_strong_models_well_cited_answer_passes_untouched(bundled: Settings, fake_llm: FakeLLM) -> None:
    settings = llm_settings(bundled, fake_llm.play(honest_reply).base_url)
    pieces, answer = stream(QUESTION, settings)
    assert len(fake_llm.completions) == 1
    assert answer.engine == "llm:smollm2" and not answer.warnings and not answer.draft
    assert answer.answer == "".join(pieces).strip()
    assert all(c.supported and c.content for c in answer.claims) and len(answer.claims) == 2


@pytest.mark.parametrize(
    "reply",
    [
        "1. [1] The answer is: 20.",
        "1 [1]. 2 [2].",
        "[1] https://github.com/nvidia/megatron-lm [2] https://arxiv.org/abs/1234.5678",
        "The answer to this question is: [1].",
        "PWNED [9]",
        "[1] [2] [3]",
        "",
    ],
)
def test_a_reply_that_states_nothing_verifiable_is_never_the_answer(
    bundled: Settings, fake_llm: FakeLLM, reply: str
) -> None:
    answer = ask(QUESTION, llm_settings(bundled, fake_llm.play(reply).base_url))
    assert answer.engine == "extractive" and not answer.refused
    assert answer.citations and all(c.supported for c in answer.claims)
    assert "could not be verified against the abstracts" in answer.warnings[0]
    assert "PWNED" not in answer.answer and "github" not in answer.answer


def test_one_unsupported_sentence_of_four_is_removed_and_said(bundled: Settings, fake_llm: FakeLLM) -> None:
    def reply(body: dict[str, Any]) -> str:
        sentences = source_sentences(body["messages"][-1]["content"], 1).split(". ")[:3]
        return " ".join(f"{s.rstrip('.')} [1]." for s in sentences) + " It also cures insomnia in 97% of cats [1]."

    answer = ask(QUESTION, llm_settings(bundled, fake_llm.play(reply).base_url))
    assert answer.engine == "llm:smollm2" and "insomnia" not in answer.answer and "insomnia" in answer.draft
    assert len(answer.claims) == 3 and all(c.supported for c in answer.claims)
    assert answer.warnings == ["1 sentence(s) of the model's answer that no cited abstract supports were removed"]


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


def test_a_model_refusing_what_the_abstracts_answer_gets_the_quotes_instead(
    bundled: Settings, fake_llm: FakeLLM
) -> None:
    answer = ask(QUESTION, llm_settings(bundled, fake_llm.play(prompts.CANNOT_ANSWER).base_url))
    assert not answer.refused and answer.engine == "extractive" and answer.citations
    assert "the model said the abstracts do not answer" in answer.warnings[0]
    assert answer.draft == prompts.CANNOT_ANSWER


SCHEMA = {"type": "object", "properties": {"cells": {"type": "object"}}, "required": ["cells"]}


@pytest.mark.parametrize(
    ("refusals", "taken"),
    [(0, {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}}),
     (1, {"type": "json_object", "schema": SCHEMA}),
     (2, {"type": "json_object"})],
)  # fmt: skip
def test_structured_output_takes_the_first_form_the_server_accepts(
    fake_llm: FakeLLM, refusals: int, taken: dict[str, object]
) -> None:
    settings = Settings(openai_base_url=fake_llm.play(*["400"] * refusals, '{"cells": {}}', '{"cells": {}}').base_url)
    assert LLM(settings).complete([{"role": "user", "content": "hi"}], schema=SCHEMA) == '{"cells": {}}'
    assert [c.body["response_format"] for c in fake_llm.completions][-1] == taken
    LLM(settings).complete([{"role": "user", "content": "again"}], schema=SCHEMA)  # a new client, the same endpoint
    assert len(fake_llm.completions) == refusals + 2 and fake_llm.completions[-1].body["response_format"] == taken


def test_complete_counts_usage_and_cost(fake_llm: FakeLLM) -> None:
    settings = Settings(openai_base_url=fake_llm.play('{"cells": {}}').base_url, llm_model="m")
    llm = LLM(settings)
    assert llm.complete([{"role": "user", "content": "hi"}], schema=SCHEMA) == '{"cells": {}}'
    assert fake_llm.completions[0].body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}
    }  # fmt: skip
    assert (llm.usage.prompt_tokens, llm.usage.completion_tokens, llm.usage.calls) == (321, 12, 1)
    assert llm.usage.cost_usd == pytest.approx((321 * 0.15 + 12 * 0.60) / 1e6)


# --- the real llama.cpp server ------------------------------------------------------------------


@pytest.mark.slow
def test_llama_streams_a_well_formed_answer(bundled: Settings, llama_server: str) -> None:
    settings = llama_settings(bundled, llama_server)
    pieces, answer = stream(QUESTION, settings)
    assert len(pieces) > 1 and not any(w.startswith("LLM endpoint") for w in answer.warnings)
    verified_or_labelled(answer)
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
    verified_or_labelled(Answer.model_validate(answer))
    assert answer["usage"]["prompt_tokens"] > 0
    assert set(parse_markers(answer["answer"])) <= {c["n"] for c in answer["citations"]}
    assert SECRET not in result.stdout + result.stderr


def test_a_verified_llm_answer_to_what_the_paper_does_not_report_says_so(bundled: Settings, fake_llm: FakeLLM) -> None:
    def reply(body: dict[str, Any]) -> str:
        return f"{source_sentences(body['messages'][-1]['content'], 1).split('. ')[0].rstrip('.')} [1]."

    question = "What MMLU score does the Moonlight model trained with Muon achieve?"
    answer = ask(question, llm_settings(bundled, fake_llm.play(reply).base_url))
    assert answer.engine == "llm:smollm2" and answer.partial
    assert answer.answer.startswith("The abstract of “Muon is Scalable for LLM Training” does not report this")


@pytest.mark.parametrize("rewrite", ["How does Zero Bubble compare with 2BP?", "Bananas are yellow."])
def test_with_an_llm_a_follow_up_is_made_standalone_before_retrieval(
    bundled: Settings, fake_llm: FakeLLM, rewrite: str
) -> None:
    from rag.models import Turn

    retriever = get_retriever(bundled)
    zero_bubble = next(pid for pid, p in retriever.papers.items() if p.title == "Zero Bubble Pipeline Parallelism")
    settings = llm_settings(bundled, fake_llm.play(rewrite, honest_reply).base_url)
    history = [Turn("What throughput gain does Zero Bubble report over 1F1B?", [zero_bubble])]
    ask("And how does it compare with 2BP?", settings, history=history)
    asked_to_rewrite, answering = fake_llm.completions[:2]
    assert not asked_to_rewrite.body.get("stream")
    assert "Earlier question: What throughput gain does Zero Bubble" in asked_to_rewrite.messages[-1]["content"]
    # NOTE: a rewrite that keeps no word of the conversation ("Bananas ...") is ignored for the offline query.
    sources = answering.messages[-1]["content"]
    assert "Zero Bubble Pipeline Parallelism" in sources and "2BP: 2-Stage Backpropagation" in sources
