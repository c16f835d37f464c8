"""LLM endpoint faults: retries, then the extractive answer with a visible warning; the key never leaks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from rag.api import ask, ask_stream
from rag.config import Settings
from rag.llm import LLM, LLMError
from rag.models import Answer
from tests.servers import (
    SECRET,
    FakeLLM,
    cli_env,
    free_port,
    llm_settings,
    run_cli,
)

# NOTE: the server fixtures live in tests/servers.py; this makes pytest see them here.

QUESTION = "How does LookupViT reduce the inference cost of vision transformers?"
REPLY = "LookupViT compresses information from higher resolution tokens to a fixed number of tokens [1]."


def assert_fallback(answer: Answer, *why: str) -> None:
    """The extractive engine answered, and the first warning says the LLM failed and why."""
    assert answer.engine == "extractive" and not answer.refused
    assert answer.citations and "[1]" in answer.answer
    warning = answer.warnings[0]
    assert warning.startswith("LLM endpoint http://127.0.0.1:") and "extractive engine" in warning
    for word in why:
        assert word in warning


@pytest.mark.parametrize(("fault", "why"), [("429", "RateLimitError"), ("500", "InternalServerError")])
@pytest.mark.parametrize("retries", [0, 2])
def test_status_errors_are_retried_then_fall_back(
    bundled: Settings, fake_llm: FakeLLM, fault: str, why: str, retries: int
) -> None:
    answer = ask(QUESTION, llm_settings(bundled, fake_llm.play(fault).base_url, llm_max_retries=retries))
    assert len(fake_llm.completions) == retries + 1
    assert [r.headers.get("x-stainless-retry-count") for r in fake_llm.completions] == [
        str(n) for n in range(retries + 1)
    ]
    assert_fallback(answer, why)


def test_a_retry_that_succeeds_gives_the_llm_answer(bundled: Settings, fake_llm: FakeLLM) -> None:
    answer = ask(QUESTION, llm_settings(bundled, fake_llm.play("429", "500", REPLY).base_url))
    assert len(fake_llm.completions) == 3
    assert answer.engine == "llm:smollm2" and answer.citations and not answer.warnings


def test_hang_past_the_timeout_is_retried_then_falls_back(bundled: Settings, fake_llm: FakeLLM) -> None:
    settings = llm_settings(bundled, fake_llm.play("hang").base_url, llm_timeout=0.5, llm_max_retries=1)
    answer = ask(QUESTION, settings)
    assert len(fake_llm.completions) == 2
    assert_fallback(answer, "APITimeoutError")


@pytest.mark.parametrize(
    ("fault", "why"),
    # NOTE: a stalled body reads as APITimeoutError (openai 3) or httpx's ReadTimeout (openai 2): both say "Timeout"
    [("cut", "incomplete chunked read"), ("stall", "Timeout"), ("badjson", "JSONDecodeError")],
)
def test_broken_stream_falls_back_after_what_was_shown(
    bundled: Settings, fake_llm: FakeLLM, fault: str, why: str
) -> None:
    settings = llm_settings(bundled, fake_llm.play(fault).base_url, llm_timeout=0.5)
    *pieces, answer = ask_stream(QUESTION, settings)
    assert "".join(map(str, pieces)) == ("" if fault == "badjson" else "The first part ")
    # NOTE: text already streamed to the user is not re-requested; one request, then the fallback.
    assert len(fake_llm.completions) == 1
    assert isinstance(answer, Answer)
    assert_fallback(answer, why)


def test_invalid_json_body_is_an_llm_error(fake_llm: FakeLLM) -> None:
    llm = LLM(Settings(openai_base_url=fake_llm.play("badjson").base_url, llm_max_retries=1))
    with pytest.raises(LLMError, match=r"^LLM endpoint http://127\.0\.0\.1:\d+/v1 failed: "):
        llm.complete([{"role": "user", "content": "hi"}], schema={"type": "object"})


def test_key_never_leaks_into_answers_or_logs(
    bundled: Settings, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = llm_settings(bundled, fake_llm.play("echo-key").base_url, openai_api_key=SecretStr(SECRET))
    answer = ask(QUESTION, settings)
    assert fake_llm.completions[0].headers["authorization"] == f"Bearer {SECRET}"
    assert all(SECRET not in json.dumps(r.body) for r in fake_llm.requests)
    assert_fallback(answer, "AuthenticationError", "[redacted]")
    assert SECRET not in answer.model_dump_json()
    assert SECRET not in caplog.text and "SECRET" not in repr(settings)


def test_cli_with_unreachable_endpoint_answers_with_warnings(bundled_home: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    env = cli_env(
        RAG_HOME=str(bundled_home), RAG_ENGINE="llm", OPENAI_BASE_URL=url, OPENAI_API_KEY=SECRET,
        RAG_LLM_MAX_RETRIES="1",
    )  # fmt: skip
    result = run_cli("-v", "ask", QUESTION, "--json", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["engine"] == "extractive" and answer["citations"]
    assert answer["warnings"][0].startswith(f"LLM endpoint {url} failed: APIConnectionError")
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    for path in bundled_home.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path


def test_a_reply_dripping_past_the_timeout_is_cut_off(bundled: Settings, fake_llm: FakeLLM) -> None:
    """Each word arrives well within the read timeout; the whole reply does not."""
    import time

    settings = llm_settings(bundled, fake_llm.play("drip").base_url, llm_timeout=1.0, llm_max_retries=0)
    start = time.perf_counter()
    answer = ask(QUESTION, settings)
    assert time.perf_counter() - start < 6
    assert_fallback(answer, "RAG_LLM_TIMEOUT")
