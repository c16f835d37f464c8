"""The embedding model: queries on CPU in ONNX Runtime (exported once), ingest in torch, and the two agree."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from rag.api import ingest_paths
from rag.config import Settings
from rag.embed import (
    EmbeddingError,
    OnnxEmbedding,
    TorchEmbedding,
    bundled_model_path,
    embed_query,
    embed_texts,
    get_embedder,
)
from tests.servers import bundled_records, write_jsonl

LONG = " ".join(r["abstract"] for r in bundled_records(0, 3))  # far past the model's 256 word pieces


def test_onnx_runtime_agrees_with_sentence_transformers(tmp_path: Path) -> None:
    onnx = get_embedder(Settings(home=tmp_path))
    torch = get_embedder(Settings(home=tmp_path, embed_runtime="torch"))
    assert isinstance(onnx, OnnxEmbedding)
    assert not isinstance(torch, OnnxEmbedding)
    assert not isinstance(get_embedder(Settings(home=tmp_path), bulk=True), OnnxEmbedding)  # ingest encodes in torch
    texts = ["GPipe", bundled_records(5, 6)[0]["title"], bundled_records(7, 8)[0]["abstract"], LONG]
    agreement = (embed_texts(onnx, texts) * embed_texts(torch, texts)).sum(axis=1)
    assert agreement.min() > 0.9999
    question = "Which systems split LLM inference into prefill and decode phases?"
    assert float(embed_query(onnx, question) @ embed_query(torch, question)) > 0.9999
    assert np.allclose(np.linalg.norm(embed_texts(onnx, texts), axis=1), 1.0, atol=1e-5)


def test_the_export_is_made_once_per_model_by_the_first_ingest(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ingest_paths([write_jsonl(tmp_path / "two.jsonl", bundled_records(0, 2))], Settings(home=tmp_path, cache_dir=cache))
    [export] = (cache / "onnx").iterdir()  # so the first `rag ask` after an ingest loads without torch
    first = get_embedder(Settings(home=tmp_path, cache_dir=cache))
    stamp = export.stat().st_mtime_ns
    # Another process (another batch size: another cache entry here) reuses the file instead of exporting again.
    second = get_embedder(Settings(home=tmp_path, cache_dir=cache, embed_batch_size=8))
    assert second is not first and isinstance(second, OnnxEmbedding)
    assert [p.name for p in (cache / "onnx").iterdir()] == [export.name]
    assert export.stat().st_mtime_ns == stamp


def test_unwritable_cache_falls_back_to_torch_or_says_where(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache should be")
    with caplog.at_level(logging.WARNING, logger="rag.embed"):
        embedder = get_embedder(Settings(home=tmp_path, cache_dir=blocker / "cache"))
    assert not isinstance(embedder, OnnxEmbedding)
    assert "running it in torch" in caplog.text
    assert embed_query(embedder, "pipeline parallelism").shape == (384,)
    with pytest.raises(EmbeddingError, match="not-a-dir"):
        get_embedder(Settings(home=tmp_path, cache_dir=blocker / "cache", embed_runtime="onnx"))


def test_the_cache_lives_under_home_unless_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_CACHE_DIR")
    assert Settings(home=tmp_path).cache_root == tmp_path / "cache"
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert Settings(home=tmp_path).cache_root == tmp_path / "elsewhere"


def test_models_outside_the_export_run_in_torch_or_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="not one"):
        get_embedder(Settings(home=tmp_path, embed_model=str(tmp_path), embed_runtime="onnx"))


def test_torch_encoding_keeps_the_order_across_batches(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    # Lengths in no order, over several batches: the encoder sorts them and tokenises ahead, then puts them back.
    texts = [r["abstract"][: 40 + 97 * i] for i, r in enumerate(bundled_records(0, 11))]
    embedder = get_embedder(Settings(home=tmp_path, embed_runtime="torch", embed_batch_size=3))
    assert isinstance(embedder, TorchEmbedding) and embedder.pieces is not None  # the Rust tokenizer, directly
    reference = SentenceTransformer(str(bundled_model_path()), device="cpu").encode(texts, normalize_embeddings=True)
    assert (embed_texts(embedder, texts) * reference).sum(axis=1).min() > 0.9999
    # Models without a plain Rust tokenizer are tokenised by sentence-transformers; the result is the same.
    fallback = TorchEmbedding(str(bundled_model_path()), "cpu", 4)
    fallback.pieces = None
    assert (embed_texts(fallback, texts) * reference).sum(axis=1).min() > 0.9999


def test_both_runtimes_apply_the_models_own_prompts(tmp_path: Path) -> None:
    model = tmp_path / "prompted"
    model.mkdir()
    for item in bundled_model_path().iterdir():
        (model / item.name).symlink_to(item)
    (model / "config_sentence_transformers.json").unlink()
    (model / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: ", "document": "passage: "}}), encoding="utf-8"
    )
    plain = get_embedder(Settings(home=tmp_path))
    question, passage = "how is prefill separated from decode?", bundled_records(3, 4)[0]["abstract"]
    for runtime in ("onnx", "torch"):
        prompted = get_embedder(Settings(home=tmp_path, embed_model=str(model), embed_runtime=runtime))
        assert float(embed_query(prompted, question) @ embed_query(plain, "query: " + question)) > 0.9999
        [[agreement]] = embed_texts(prompted, [passage]) @ embed_texts(plain, ["passage: " + passage]).T
        assert agreement > 0.9999
        assert float(embed_query(prompted, question) @ embed_query(plain, question)) < 0.999
