"""The LLM client: the only place that builds OpenAI(-compatible) clients. Streams, retries, counts."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from rag.config import Settings, shown_url
from rag.errors import RagError
from rag.text import count_tokens

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

log = logging.getLogger(__name__)

_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{4,}|[A-Za-z0-9_\-]{32,})\b")


class LLMError(RagError):
    """The endpoint failed after retries; the message never contains the key."""


@dataclass
class Usage:
    """Token counts, estimated cost and timings of one or more calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    first_token_s: float | None = None
    total_s: float = 0.0
    model: str = ""
    counted_locally: bool = field(default=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def redact(text: str, settings: Settings) -> str:
    """Remove the API key (and anything key-shaped) from text bound for users or logs."""
    if settings.openai_api_key:
        secret = settings.openai_api_key.get_secret_value()
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


def _reason(exc: BaseException) -> str:
    """`Type: first line` of the error, plus its root cause: the SDK's own messages ("Connection error.") say little."""

    def line(e: BaseException) -> str:
        text = str(e).splitlines()[0][:200] if str(e) else ""
        return f"{type(e).__name__}: {text}" if text else type(e).__name__

    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return line(exc) if root is exc else f"{line(exc)} ({line(root)})"


_FORMAT_TAKEN: dict[tuple[str, str], int] = {}  # (endpoint, model) → the first of _json_formats it takes


def _json_formats(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Ways to ask for JSON that follows a schema, most specific first: `json_schema` (OpenAI, vLLM, Ollama,
    llama.cpp's own server), the schema inside `json_object` (llama-cpp-python's server), plain JSON mode."""
    return [
        {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}},
        {"type": "json_object", "schema": schema},
        {"type": "json_object"},
    ]


class LLM:
    """Chat completions against OpenAI or any OpenAI-compatible server."""

    def __init__(self, settings: Settings) -> None:
        from openai import OpenAI

        self.settings = settings
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        # NOTE: the SDK retries 408/409/429/5xx and connection errors with exponential backoff.
        self.client = OpenAI(
            api_key=key,
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )
        self.usage = Usage(model=settings.llm_model)

    @property
    def model(self) -> str:
        return self.settings.llm_model

    def _record(self, prompt: int, completion: int, local: bool) -> None:
        u = self.usage
        u.prompt_tokens += prompt
        u.completion_tokens += completion
        u.calls += 1
        u.counted_locally = u.counted_locally or local
        u.cost_usd = (
            u.prompt_tokens * self.settings.llm_price_in + u.completion_tokens * self.settings.llm_price_out
        ) / 1e6

    def _fail(self, exc: Exception, streamed: int = 0) -> LLMError:
        where = shown_url(self.settings.openai_base_url) or "the OpenAI API"
        when = f" after {streamed} characters of the reply" if streamed else ""
        return LLMError(f"LLM endpoint {where} failed{when}: {redact(_reason(exc), self.settings)}")

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        """Yield the reply piece by piece; raises LLMError if the endpoint fails or the stream breaks."""
        start = time.perf_counter()
        pieces: list[str] = []
        usage: Any = None
        try:
            stream = self.client.chat.completions.create(
                model=self.model,
                # NOTE: the role/content dicts are the SDK's message TypedDicts; the cast only tells mypy so.
                messages=cast("list[ChatCompletionMessageParam]", messages),
                max_tokens=max_tokens or self.settings.llm_max_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            finished = False
            # NOTE: the client's timeout bounds each read; this bounds the whole reply, so a server that drips a
            # token every few seconds cannot hold the answer for minutes.
            deadline = start + self.settings.llm_timeout
            for chunk in stream:
                if time.perf_counter() > deadline:
                    stream.close()
                    raise TimeoutError(f"the reply took longer than RAG_LLM_TIMEOUT ({self.settings.llm_timeout:g} s)")
                usage = getattr(chunk, "usage", None) or usage
                for choice in chunk.choices or []:
                    piece = choice.delta.content or ""
                    if piece:
                        if self.usage.first_token_s is None:
                            self.usage.first_token_s = time.perf_counter() - start
                        pieces.append(piece)
                        yield piece
                    finished = finished or choice.finish_reason is not None
            if not finished:
                raise ConnectionError("stream ended before the model finished")
        except LLMError:
            raise
        except Exception as exc:
            raise self._fail(exc, streamed=sum(map(len, pieces))) from None
        finally:
            self.usage.total_s += time.perf_counter() - start
        self._count(messages, "".join(pieces), usage)

    def complete(
        self, messages: list[dict[str, str]], max_tokens: int | None = None, schema: dict[str, Any] | None = None
    ) -> str:
        """The whole reply at once. With a JSON schema the server is asked to follow it, in the first form it takes
        (`_json_formats`); the form that worked is remembered per endpoint and model."""
        from openai import APIStatusError

        start = time.perf_counter()
        where = (self.settings.openai_base_url or "", self.model)
        formats = _json_formats(schema)[_FORMAT_TAKEN.get(where, 0) :] if schema else [None]
        try:
            for i, response_format in enumerate(formats, 1):
                request: dict[str, Any] = {
                    "model": self.model,
                    "messages": messages,
                    "max_tokens": max_tokens or self.settings.llm_max_tokens,
                    "temperature": 0,
                    **({"response_format": response_format} if response_format else {}),
                }
                try:
                    response = cast("ChatCompletion", self.client.chat.completions.create(**request))
                    break
                except APIStatusError as exc:
                    # NOTE: servers refuse a form they do not know with 400 or 422, llama-cpp-python's with a 500
                    refused = exc.status_code in (400, 422) or "response_format" in str(exc)
                    if i == len(formats) or response_format is None or not refused:
                        raise
                    # NOTE: this server does not take this form of structured output: the next one asks for less
                    _FORMAT_TAKEN[where] = _FORMAT_TAKEN.get(where, 0) + 1
                    log.info("the endpoint refused response_format %s; trying the next form", response_format["type"])
        except Exception as exc:
            raise self._fail(exc) from None
        finally:
            self.usage.total_s += time.perf_counter() - start
        text = response.choices[0].message.content or "" if response.choices else ""
        self._count(messages, text, response.usage)
        return text

    def _count(self, messages: list[dict[str, str]], reply: str, usage: Any) -> None:
        if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
            self._record(int(usage.prompt_tokens), int(usage.completion_tokens or 0), local=False)
        else:
            prompt = sum(count_tokens(m["content"]) + 4 for m in messages)
            self._record(prompt, count_tokens(reply), local=True)
