"""GPU encoder throughput: the bundled MiniLM through rag's embedder (fp16 on CUDA) vs sentence-transformers defaults.

Builds N synthetic abstracts (title + abstract, recombined from the sentences of the bundled corpus) and
reports abstracts per second for each configuration. Run it on a machine with a CUDA GPU:

    python scripts/gpu_encode.py --n 100000 [--model PATH] [--json OUT.json]

`--device cpu --n 500` checks the script itself on a machine without one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = ROOT / "rag" / "data" / "trending-papers.txt"
# NOTE: a plain splitter keeps this script free of nltk; the synthetic texts only need plausible sentences.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def real_papers() -> list[tuple[str, str]]:
    """(title, abstract) of the bundled corpus, through rag's own reader."""
    from rag.corpus import read_file

    return [(p.title, p.abstract) for p in read_file(CORPUS).papers]


def synthetic(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """N synthetic `title\\n\\nabstract` texts, and the `title\\n\\nsentence` chunk texts of the first N/5 of them.

    Each synthetic paper takes a real paper's sentence count and draws that many sentences from the whole
    corpus, so lengths follow the real distribution. Chunk texts have the shape rag's index embeds.
    """
    papers = real_papers()
    rng = random.Random(seed)
    pool = [s for _, a in papers for s in _SENTENCE_END.split(a) if s.strip()]
    titles = [t.split() for t, _ in papers]
    counts = [len(_SENTENCE_END.split(a)) for _, a in papers]
    abstracts, chunks = [], []
    for i in range(n):
        a, b = rng.choice(titles), rng.choice(titles)
        title = " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :])
        sentences = rng.sample(pool, rng.choice(counts))
        abstracts.append(f"{title}\n\n{' '.join(sentences)}")
        if i < n // 5:
            chunks += [f"{title}\n\n{s}" for s in sentences]
    return abstracts, chunks


def timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="synthetic abstracts to encode")
    parser.add_argument(
        "--model", default=None, help="sentence-transformers model folder (default: the bundled MiniLM)"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", default="256,1024", help="batch sizes to try on rag's path beside its default")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    model_path = args.model
    if model_path is None:
        from rag.embed import bundled_model_path

        model_path = str(bundled_model_path())
    on_cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    card = torch.cuda.get_device_name(0) if on_cuda else platform.processor() or "cpu"
    texts, chunk_texts = synthetic(args.n)
    results: dict[str, object] = {
        "card": card,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "n_abstracts": len(texts),
        "median_chars": statistics.median(len(t) for t in texts),
        "n_chunks": len(chunk_texts),
        "chunk_papers": args.n // 5,
        "runs": [],
    }
    runs: list[dict[str, object]] = results["runs"]  # type: ignore[assignment]

    def record(name: str, seconds: float, count: int, unit: str, dtype: str) -> None:
        row = {
            "config": name,
            "seconds": round(seconds, 2),
            "per_s": round(count / seconds),
            "unit": unit,
            "dtype": dtype,
        }
        runs.append(row)
        print(json.dumps(row), flush=True)

    # 1. sentence-transformers defaults: fp32, batch 32 (it sorts by length itself).
    defaults = SentenceTransformer(model_path, device=args.device).float()
    defaults.encode(texts[:256])
    seconds = timed(lambda: defaults.encode(texts), sync)
    record("sentence-transformers defaults (fp32, batch 32)", seconds, len(texts), "abstracts", "float32")
    reference = defaults.encode(texts[:2000], normalize_embeddings=True)
    # 2. The same in float16 with large batches: what rag ran through llama-index's HuggingFaceEmbedding.
    if on_cuda:  # float16 is a GPU format; on CPU it is slow
        big = max(int(b) for b in args.batch_sizes.split(","))
        defaults.half()
        seconds = timed(lambda: defaults.encode(texts, batch_size=big), sync)
        record(f"sentence-transformers encode, fp16, batch {big}", seconds, len(texts), "abstracts", "float16")
    defaults = None
    if on_cuda:
        torch.cuda.empty_cache()

    # 3. rag's own path: what ingest gets from rag.embed.get_embedder(bulk=True) on this device.
    from rag.config import Settings
    from rag.embed import embed_texts, get_embedder

    home = Path(tempfile.mkdtemp(prefix="gpu-encode-"))
    for batch in [None, *(int(b) for b in args.batch_sizes.split(","))]:
        settings = Settings(home=home, embed_model=model_path, embed_device=args.device, embed_batch_size=batch)
        embedder = get_embedder(settings, bulk=True)
        dtype = str(next(embedder.model.parameters()).dtype).removeprefix("torch.")  # type: ignore[attr-defined]
        embed_texts(embedder, texts[:1024])
        seconds = timed(lambda e=embedder: embed_texts(e, texts), sync)
        label = f"batch {embedder.batch_size}" + (" (its default here)" if batch is None else "")  # type: ignore[attr-defined]
        record(f"rag.embed TorchEmbedding, {label}", seconds, len(texts), "abstracts", dtype)
        if batch is None:
            agreement = (embed_texts(embedder, texts[:2000]) * reference).sum(axis=1)
            runs[-1]["min_cosine_vs_fp32_defaults"] = round(float(agreement.min()), 5)
            seconds = timed(lambda e=embedder: embed_texts(e, chunk_texts), sync)
            record(
                "rag.embed TorchEmbedding, sentence chunks (what ingest embeds)",
                seconds,
                len(chunk_texts),
                "chunks",
                dtype,
            )
            runs[-1]["papers_per_s"] = round((args.n // 5) / seconds)
            # What one worker thread can tokenise: the ceiling of this path when the GPU is not the limit.
            parallel = os.environ.get("TOKENIZERS_PARALLELISM", "unset")
            model, size = embedder.model, embedder.batch_size  # type: ignore[attr-defined]
            tokenisers = {
                "rag's worker (Rust tokenizer direct)": embedder._features,  # type: ignore[attr-defined]
                "sentence-transformers' preprocess": getattr(model, "preprocess", model.tokenize),
            }
            for name, tokenise in tokenisers.items():
                seconds = timed(lambda t=tokenise, b=size: [t(texts[i : i + b]) for i in range(0, len(texts), b)], sync)
                record(
                    f"tokenising alone: {name}, batch {size}, TOKENIZERS_PARALLELISM={parallel}",
                    seconds,
                    len(texts),
                    "abstracts",
                    "-",
                )
    return _finish(results, args.json)


def _finish(results: dict[str, object], path: Path | None) -> int:
    print(json.dumps(results, indent=1))
    if path:
        path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
