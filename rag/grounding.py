"""Grounded generation: what answers, comparisons and reviews share when a model writes from abstracts.

Numbered sources fenced into the prompt and packed to the context window, the similarity the verifier uses,
structured output, and generate-then-verify through `rag.citations.gate`. The features decide what to ask; this module
decides what the model is shown and what of its reply may reach the reader.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from rag.citations import Gated, Similarity, Source, gate
from rag.config import Settings
from rag.embed import Embedder, embed_texts
from rag.llm import LLM
from rag.text import count_tokens

log = logging.getLogger(__name__)

# NOTE: an abstract must not be able to close its own fence and speak as the user; small models also echo fences.
FENCE = re.compile(r"<<<\s*SOURCE|SOURCE\s*\d*\s*>>>", re.IGNORECASE)
MARGIN_TOKENS = 64  # what a chat template adds around the messages
JSON_ATTEMPTS = 2  # a reply that breaks the schema is shown to the model once, with the error

Parsed = TypeVar("Parsed", bound=BaseModel)


def model(settings: Settings, warnings: list[str], offline: str) -> LLM | None:
    """The model to write with, or None for the offline engine: when it was asked for, or when no endpoint is
    configured for the LLM engine (said first in `warnings`, ending with what was done instead: `offline`)."""
    if settings.engine != "llm":
        return None
    if not settings.llm_configured:
        warnings.insert(0, f"no LLM configured (set OPENAI_API_KEY or OPENAI_BASE_URL); {offline}")
        return None
    return LLM(settings)


def fenced(source: Source) -> str:
    """One numbered source as the model sees it: its title, then its abstract between fences."""
    body = FENCE.sub("", " ".join(source.sentences))
    return f"[{source.n}] {source.paper.title}\n<<<SOURCE {source.n}\n{body}\nSOURCE {source.n}>>>"


def source_budget(settings: Settings, *fixed: str) -> int:
    """Tokens left for sources: the context window less the reply, the prompt's fixed text and a margin."""
    return settings.llm_context_tokens - settings.llm_max_tokens - sum(map(count_tokens, fixed)) - MARGIN_TOKENS


def pack(sources: Sequence[Source], budget: int) -> tuple[list[Source], str]:
    """As many whole sources as the budget holds, in their order, and their fenced blocks."""
    kept: list[Source] = []
    blocks: list[str] = []
    used = 0
    for source in sources:
        block = fenced(source)
        cost = count_tokens(block)
        if used + cost > budget:
            break
        kept.append(source)
        blocks.append(block)
        used += cost
    return kept, "\n\n".join(blocks)


def similarity(embedder: Embedder) -> Similarity:
    """Cosine similarity of a claim to sentences, with the index's embedding model. Each text is embedded once per
    reply, however many claims are checked against it: the claims of one reply cite the same few sources."""
    seen: dict[str, np.ndarray] = {}

    def similar(claim: str, sentences: Sequence[str]) -> list[float]:
        new = list(dict.fromkeys(t for t in (claim, *sentences) if t not in seen))
        if new:
            seen.update(zip(new, embed_texts(embedder, new), strict=True))
        return [float(seen[s] @ seen[claim]) for s in sentences]

    return similar


def written(llm: LLM, messages: list[dict[str, str]], sources: Sequence[Source], similar: Similarity) -> Gated:
    """Generate, then verify: the model's reply, without the fences it may echo, through the gate."""
    return gate(FENCE.sub("", llm.complete(messages)).strip(), sources, similar)


def structured(llm: LLM, messages: list[dict[str, str]], schema: type[Parsed]) -> tuple[Parsed | None, str]:
    """The model's reply parsed against a schema, which the server enforces where it can (`LLM.complete`); a reply
    that still fails to parse is shown to the model once more with the error. None and why, if it never parses."""
    error = ""
    for _ in range(JSON_ATTEMPTS):
        reply = llm.complete(messages, schema=schema.model_json_schema())
        try:
            return schema.model_validate_json(json_object(reply)), ""
        except ValidationError as exc:
            first: Mapping[str, object] = exc.errors()[0] if exc.errors() else {}
            error = f"{first.get('type', 'invalid')}: {first.get('msg', str(exc))}"[:200]
            log.info("invalid structured output: %s", error)
        messages = [
            *messages,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": f"That was not valid JSON for the schema ({error}). "
                                        "Reply with the JSON object only."},
        ]  # fmt: skip
    return None, error


def json_object(reply: str) -> str:
    """The JSON object in a reply, without Markdown fences or chatter around it."""
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", reply.strip())
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text
