"""Every indexed sentence's text and vector, kept beside an embedded index's snapshot (rag.snapshot).

Embedded Chroma loads a collection's whole HNSW index into a process the first time anything touches it: at 100,000
papers the sentences' index is 837,680 vectors, 3.8 s and 1.3 GB before a first answer (BENCHMARKS.md). What a
query needs of the sentences is small: the ones of the candidate papers that the papers' index and BM25 found, and
those of the hits (and a review's, all of them). Kept here, memory-mapped, they are read by position, and the
sentences' collection is read only by ingest and checks. A client of a Chroma server does not keep them: its server
holds the index.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.models import Paper
from rag.store import Chunk, chunk_id

_VECTORS = "sentence_vectors.f32"  # raw float32, one row per sentence: written as read
_TEXT = "sentence_text.bin"
_OFFSETS = "sentence_offsets.npy"
_ENDS = "sentence_ends.npy"
PAGE = 500  # papers whose sentences are read from the store at once


@dataclass
class Sentences:
    """The sentences of the papers of a snapshot, in its papers' order and each paper's in abstract order."""

    ends: np.ndarray  # per paper, where its sentences end (a running count)
    vectors: np.ndarray  # one unit vector per sentence, float32 as stored (float16 took 5 ms a query to convert)
    text: np.ndarray  # every sentence's UTF-8 bytes, run together
    offsets: np.ndarray  # where each sentence's bytes start, and the end

    def __len__(self) -> int:
        return len(self.vectors)

    def span(self, row: int) -> range:
        """The sentence rows of the paper at `row` of the snapshot."""
        return range(int(self.ends[row - 1]) if row else 0, int(self.ends[row]))

    def sentence(self, i: int) -> str:
        return bytes(self.text[int(self.offsets[i]) : int(self.offsets[i + 1])]).decode("utf-8")

    def nearest(self, vector: np.ndarray, rows: Sequence[int], k: int) -> dict[int, tuple[float, int]]:
        """Among the sentences of the papers at `rows`, the k closest to the unit vector: per paper row, the cosine
        of its closest one and that sentence's position in the abstract. Like the k nearest sentences of the whole
        index whenever the candidates hold them."""
        papers = np.sort(np.asarray(rows, dtype=np.int64))  # NOTE: read in file order, which reads faster
        stops = self.ends[papers]
        starts = np.where(papers > 0, self.ends[np.maximum(papers - 1, 0)], 0)
        lengths = stops - starts
        total = int(lengths.sum())
        if not total or k <= 0:
            return {}
        start = np.repeat(starts, lengths)
        index = start + np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        # NOTE: not `@`: OpenBLAS's threads spin on after a product, and slowed the next query's encoder by half
        similarity = np.einsum("ij,j->i", self.vectors[index], np.asarray(vector, dtype=np.float32))
        top = np.argpartition(-similarity, k - 1)[:k] if k < total else np.arange(total)
        top = top[np.argsort(-similarity[top], kind="stable")]
        owners = np.repeat(papers, lengths)[top]
        _, first = np.unique(owners, return_index=True)  # each paper's best sentence, the first of it in `top`
        return {int(owners[f]): (float(similarity[top[f]]), int(index[top[f]] - start[top[f]])) for f in np.sort(first)}

    def chunks(self, row: int, paper: Paper) -> list[Chunk]:
        """The sentences of the paper at `row`, as chunks with their vectors."""
        return [
            Chunk(chunk_id(paper, k), paper.paper_id, self.sentence(i), k, np.asarray(self.vectors[i], np.float32))
            for k, i in enumerate(self.span(row))
        ]

    @staticmethod
    def write(
        folder: Path, ids: Sequence[str], read: Callable[[Sequence[str]], Iterable[Chunk]], fresh: Collection[str] = (),
        before: Sentences | None = None, before_ids: Sequence[str] = (),
    ) -> None:  # fmt: skip
        """Write the sentences of the papers `ids` into the folder: those of `before` (whose papers were
        `before_ids`) for the papers it holds that are not `fresh`, the others `read` from the store a page of papers
        at a time. Streamed to the files in the papers' order: at 100,000 papers the vectors are 1.3 GB."""
        row_before = {pid: i for i, pid in enumerate(before_ids)} if before is not None else {}
        old = set(row_before) - set(fresh)
        counts: list[int] = []
        lengths: list[np.ndarray] = []
        with (folder / _VECTORS).open("wb") as vectors, (folder / _TEXT).open("wb") as text:
            for first in range(0, len(ids), PAGE):
                page = ids[first : first + PAGE]
                found: dict[str, list[Chunk]] = {}
                for chunk in read([pid for pid in page if pid not in old]) if any(p not in old for p in page) else ():
                    found.setdefault(chunk.paper_id, []).append(chunk)
                for pid in page:
                    if pid in old and before is not None:
                        span = before.span(row_before[pid])
                        vectors.write(before.vectors[span.start : span.stop].tobytes())
                        text.write(before.text[before.offsets[span.start] : before.offsets[span.stop]].tobytes())
                        lengths.append(np.diff(before.offsets[span.start : span.stop + 1]))
                        counts.append(len(span))
                        continue
                    own = sorted(found.get(pid, ()), key=lambda c: c.position)
                    encoded = [c.text.encode("utf-8") for c in own]
                    for chunk, piece in zip(own, encoded, strict=True):
                        vectors.write(np.asarray(chunk.embedding, dtype=np.float32).tobytes())
                        text.write(piece)
                    lengths.append(np.asarray([len(t) for t in encoded], dtype=np.int64))
                    counts.append(len(own))
        np.save(folder / _ENDS, np.cumsum(counts, dtype=np.int64))
        np.save(
            folder / _OFFSETS,
            np.concatenate([[0], np.cumsum(np.concatenate(lengths)) if lengths else []]).astype(np.int64),
        )

    @classmethod
    def load(cls, folder: Path, papers: int) -> Sentences | None:
        """The sentences kept in the folder, memory-mapped; None when none are kept or they do not fit `papers`."""
        if not (folder / _ENDS).is_file():
            return None
        ends = np.load(folder / _ENDS)
        offsets = np.load(folder / _OFFSETS, mmap_mode="r")
        total = int(ends[-1]) if len(ends) else 0
        size, floats = (folder / _TEXT).stat().st_size, (folder / _VECTORS).stat().st_size // 4
        if len(ends) != papers or len(offsets) != total + 1 or int(offsets[-1]) != size or (total and floats % total):
            raise ValueError("the kept sentences do not match the snapshot")
        vectors = np.zeros((0, 0), np.float32)
        if total:
            vectors = np.memmap(folder / _VECTORS, dtype=np.float32, mode="r").reshape(total, -1)
        text = np.memmap(folder / _TEXT, dtype=np.uint8, mode="r") if size else np.zeros(0, dtype=np.uint8)
        # NOTE: plain arrays over the mapped files: np.memmap's own indexing cost a millisecond a query
        return cls(ends, np.asarray(vectors), np.asarray(text), np.asarray(offsets))
