"""Configuration: one typed settings object read from the environment and `.env`."""

from __future__ import annotations

import hashlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"
# NOTE: package data, shipped in the wheel; pip installs a wheel unpacked, so they are files on disk
DATA = Path(str(resources.files("rag") / "data"))
BUNDLED_CORPUS = DATA / "trending-papers.txt"
# NOTE: part of every index name; raise it when what the index stores changes, so an old index is never read.
# 2: a paper record's abstract moved from its Chroma document to its metadata.
# 3: a paper record's vector encodes its title and abstract, not the mean of its sentence vectors.
# 4: a sentence no longer ends at "e.g." or "i.e." (rag.index.split_sentences), so the stored sentences changed.
# 5: a paper record keeps the role probabilities of its sentences (rag.roles); the role model's digest joined the name.
# 6: a versioned name's family is a word of the paper too ('qwen' of 'Qwen2-VL': rag.text.families).
# 7: a name written in mixed case is a term whole too, and a content word only whole ('mobilevlm' of 'MobileVLM':
#    rag.text.compounds).
INDEX_FORMAT = 7


class Settings(BaseSettings):
    """Every knob of the tool. Environment variables carry the `RAG_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        env_file=".env",
        env_file_encoding="utf-8",
        # NOTE: a shared .env carries other tools' keys (DATABASE_URL=...); those are not ours to refuse.
        extra="ignore",
        populate_by_name=True,
    )

    home: Path = Field(
        default_factory=lambda: Path(user_data_dir("paper-rag", appauthor=False)),
        description="Where the index, caches and logs live.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="http://host:port of a Chroma server; unset means embedded Chroma under home.",
    )
    collection_prefix: str = Field(default="papers", description="Prefix of Chroma collection names.")

    embed_backend: Literal["sentence-transformers", "openai"] = Field(
        default="sentence-transformers", description="Who computes embeddings."
    )
    embed_model: str = Field(
        default=DEFAULT_EMBED_MODEL,
        description="Sentence-transformers model name or path, or the endpoint's embedding model.",
    )
    embed_base_url: str | None = Field(
        default=None, description="OpenAI-compatible embeddings endpoint (embed_backend=openai)."
    )
    embed_batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Texts per embedding batch; unset: 512 on a GPU, 16 on CPU, 64 per request to an endpoint.",
    )
    embed_device: str | None = Field(
        default=None, description="Device for local embeddings (cpu, cuda); unset picks cuda when available."
    )
    embed_runtime: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="auto: queries in ONNX Runtime on CPU (when the model allows), corpus encoding in torch; "
        "or onnx / torch for both.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Where derived artefacts live (the ONNX export of the embedding model); unset: home/cache.",
    )
    # NOTE: a chunk is a sentence, and answers quote chunks: a sentence cut at 96 tokens (5 of the bundled ones) was
    # quoted as "to accuracy." or "405B) on NVIDIA H100 GPUs …". The longest bundled sentence has 145 tokens, and
    # 160 stays inside the 256 word pieces MiniLM reads.
    chunk_tokens: int = Field(
        default=160, ge=16, le=2048, description="Largest chunk, in tiktoken tokens (cl100k_base)."
    )
    chunk_overlap: int = Field(default=0, ge=0, description="Token overlap between split chunks.")
    ingest_batch: int = Field(
        default=4096,
        ge=1,
        description="Chunks ingest encodes and writes at a time; a killed ingest redoes at most this many.",
    )

    lock_wait: float = Field(
        default=600.0,
        ge=0,
        description="Seconds a write (an ingest) waits for another writer of the same index before it gives up.",
    )

    top_k: int = Field(default=5, ge=1, le=100, description="Papers retrieved per question.")
    glossary: Path | None = Field(
        default=None,
        description="A JSON Lines file of your field's terms and the everyday words for them, added to the bundled "
        'glossary: {"term": "CRISPR", "everyday": ["gene scissors", "cutting genes"]} a line.',
    )

    engine: Literal["extractive", "llm"] = Field(
        default="extractive", description="Answer engine: offline extractive or an OpenAI-compatible LLM."
    )
    llm_model: str = Field(default="gpt-4o-mini", description="Chat model name at the endpoint.")
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "RAG_OPENAI_API_KEY"),
        description="API key for the LLM endpoint; never logged or saved.",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "RAG_OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp); unset means OpenAI.",
    )
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds before an LLM request times out.")
    llm_max_retries: int = Field(default=2, ge=0, le=10, description="Retries on 429/5xx/connection errors.")
    llm_context_tokens: int = Field(default=8192, ge=512, description="Context window of the model.")
    llm_max_tokens: int = Field(default=512, ge=16, description="Longest answer the model may write.")
    llm_price_in: float = Field(default=0.15, ge=0, description="USD per million prompt tokens.")
    llm_price_out: float = Field(default=0.60, ge=0, description="USD per million completion tokens.")

    @field_validator("chroma_url", "openai_base_url", "embed_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http(s)://host:port URL, got {value!r}")
        return value.rstrip("/")

    @property
    def cache_root(self) -> Path:
        """Where derived artefacts live: RAG_CACHE_DIR, else the cache folder under home."""
        return self.cache_dir or self.home / "cache"

    @property
    def llm_configured(self) -> bool:
        """Whether an LLM endpoint is usable: a key, or a local server that needs none."""
        return self.openai_api_key is not None or self.openai_base_url is not None

    @property
    def index_name(self) -> str:
        """Chroma collection name derived from everything that changes the embeddings, and the index format.

        A changed model, chunking setting, sentence role model, bundled glossary (a paper's vector reads its abstract
        in everyday words too, rag.index) or format gives another name, so a stale index is never read.
        """
        from rag.glossary import glossary
        from rag.roles import fingerprint as roles

        fingerprint = "|".join(
            [
                str(INDEX_FORMAT),
                roles(),
                glossary().digest,
                self.embed_backend,
                self.embed_model,
                self.embed_base_url or "",
                str(self.chunk_tokens),
                str(self.chunk_overlap),
            ]
        )
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:10]
        model = re.sub(r"[^a-zA-Z0-9]+", "-", Path(self.embed_model).name).strip("-").lower()[:40]
        return f"{self.collection_prefix}_{model}_c{self.chunk_tokens}o{self.chunk_overlap}_{digest}"


_SECRET_PARAM = re.compile(r"(key|token|secret|password|passwd|pwd|auth|signature|sig|credential)", re.IGNORECASE)


def env_notices(path: Path = Path(".env")) -> list[str]:
    """What a `.env` in the working directory changes about where requests go (the API key goes there too)."""
    from dotenv import dotenv_values

    if not path.is_file():
        return []
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError):
        return []
    return [
        f"{path.resolve()} sets {name}={shown_url(values[name])}"
        for name in ("OPENAI_BASE_URL", "RAG_OPENAI_BASE_URL", "RAG_CHROMA_URL")
        if values.get(name) and not os.environ.get(name)
    ]


def shown_url(url: str | None) -> str:
    """A URL as it may be shown or logged: userinfo and key-like query parameters replaced by "***"."""
    if not url:
        return ""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<a malformed URL>"
    netloc = ("***@" if parts.username or parts.password else "") + host + port
    query = urlencode(
        [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def get_settings(**overrides: object) -> Settings:
    """Read the settings afresh (environment and `.env`), with optional overrides.

    A `.env` is shared with other tools, so keys that are not ours are ignored; a `RAG_` key we do not know is a
    typo ("RAG_TOPK") and is refused, so it does not silently do nothing."""
    from dotenv import dotenv_values

    known = {f"RAG_{name.upper()}" for name in Settings.model_fields} | {"RAG_OPENAI_API_KEY", "RAG_OPENAI_BASE_URL"}
    env_file = Path(".env")
    if env_file.is_file():
        try:
            keys = list(dotenv_values(env_file))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {env_file.resolve()} ({exc})") from None
        unknown = [k for k in keys if k.upper().startswith("RAG_") and k.upper() not in known]
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]} in {env_file.resolve()} (see .env.example)")
    return Settings(**overrides)  # type: ignore[arg-type]
