"""How far the topic map's papers move when a few papers are added: t-SNE from scratch against t-SNE continued from
the last layout (what `rag.api.topic_map` does). Reads the index at RAG_HOME (the bundled corpus).

Usage: RAG_HOME=… .venv/bin/python scripts/bench_map_layout.py
"""

from __future__ import annotations

import numpy as np

from rag.config import get_settings
from rag.store import Store
from rag.themes import align, place, project


def shift(before: np.ndarray, after: np.ndarray) -> str:
    """Median and 95th-percentile distance each paper moved, as a share of the map's extent."""
    moved = np.linalg.norm(before - after, axis=1) / np.ptp(before, axis=0).max()
    return f"{np.median(moved):.3f} / {np.percentile(moved, 95):.3f}"


def main() -> None:
    _, vectors = Store(get_settings()).all_papers(with_embeddings=True)
    assert vectors is not None, "the index is empty: run `rag ingest` first"
    print("| papers added | moved, from scratch (median / p95) | moved, continued (median / p95) |")
    print("| --- | --- | --- |")
    for added in (2, 5, 10):
        kept = np.arange(len(vectors)) >= added
        before = project(vectors[kept])
        known = {int(i): (float(x), float(y)) for i, (x, y) in zip(np.flatnonzero(kept), before, strict=True)}
        scratch, continued = project(vectors), align(project(vectors, place(vectors, known)), known)
        print(f"| {added} | {shift(before, scratch[kept])} | {shift(before, continued[kept])} |")


if __name__ == "__main__":
    main()
