"""The Chroma store: a real `chroma run` server, and incremental ingest into embedded Chroma."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.api import get_retriever, ingest_paths, papers
from rag.config import Settings, get_settings
from rag.index import chunk_paper
from rag.models import Paper
from rag.store import Store
from tests.servers import bundled_records, write_jsonl

# NOTE: the server fixtures live in tests/servers.py; this makes pytest see them here.


def chunk_ids(store: Store) -> list[str]:
    return list(store.chunks.get(include=[])["ids"])


def expected_chunk_ids(records: list[dict[str, str]], settings: Settings) -> set[str]:
    papers = [Paper(paper_id=r["id"], title=r["title"], abstract=r["abstract"]) for r in records]
    return {node.id_ for p in papers for node in chunk_paper(p, settings)}


def test_server_mode_ingests_and_searches(
    chroma_server: str, tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = bundled_records(0, 6)
    monkeypatch.setenv("RAG_CHROMA_URL", chroma_server)
    settings = get_settings()
    assert settings.chroma_url == chroma_server
    report = ingest_paths([write_jsonl(tmp_path / "six.jsonl", records)], settings)
    assert (report.added, report.total_papers) == (6, 6)
    assert {p.paper_id for p in papers(settings)} == {r["id"] for r in records}
    assert set(chunk_ids(Store(settings))) == expected_chunk_ids(records, settings)
    [hit, *_] = get_retriever(settings).search(records[3]["title"], k=3)
    assert hit.paper_id == records[3]["id"]
    assert not (isolated / "chroma").exists()


@pytest.fixture()
def corpus(tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    records = bundled_records(10, 15)
    return write_jsonl(tmp_path / "five.jsonl", records), records


def test_unchanged_reingest_embeds_nothing(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    path, records = corpus
    first = ingest_paths([path], Settings())
    again = ingest_paths([path], Settings())
    assert (first.added, first.chunks_embedded) == (5, len(expected_chunk_ids(records, Settings())))
    assert (again.added, again.updated, again.removed, again.unchanged, again.chunks_embedded) == (0, 0, 0, 5, 0)


def test_changed_abstract_reembeds_only_that_paper(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    path, records = corpus
    settings = Settings()
    ingest_paths([path], settings)
    records[2] = {**records[2], "abstract": records[2]["abstract"] + " We release the code and the weights."}
    report = ingest_paths([write_jsonl(path, records)], settings)
    changed = expected_chunk_ids(records[2:3], settings)
    assert (report.added, report.updated, report.unchanged, report.chunks_embedded) == (0, 1, 4, len(changed))
    assert set(chunk_ids(Store(settings))) == expected_chunk_ids(records, settings)


def test_chunks_of_a_paper_are_its_current_chunks_in_order(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    path, records = corpus
    settings = Settings()
    ingest_paths([path], settings)
    records[1] = {**records[1], "abstract": records[1]["abstract"] + " We release the code and the weights."}
    ingest_paths([write_jsonl(path, records)], settings)
    wanted = [records[1]["id"], records[3]["id"]]
    chunks = Store(settings).chunks_of(wanted)
    papers = {r["id"]: Paper(paper_id=r["id"], title=r["title"], abstract=r["abstract"]) for r in records}
    assert [c.chunk_id for c in chunks] == [n.id_ for pid in sorted(wanted) for n in chunk_paper(papers[pid], settings)]
    assert any("We release the code and the weights." in c.text for c in chunks if c.paper_id == records[1]["id"])
    assert all(c.embedding is not None and c.embedding.shape == (384,) for c in chunks)


def test_chunks_of_reads_records_written_before_chunk_counts(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    path, records = corpus
    settings = Settings()
    ingest_paths([path], settings)
    store = Store(settings)
    before = [c.chunk_id for c in store.chunks_of([r["id"] for r in records])]
    old = store.papers.get(include=["metadatas", "embeddings"])
    store.papers.delete(ids=old["ids"])
    store.papers.add(
        ids=old["ids"],
        embeddings=old["embeddings"],
        metadatas=[{k: v for k, v in m.items() if k != "chunks"} for m in old["metadatas"]],
    )
    assert not any("chunks" in m for m in store.papers.get(include=["metadatas"])["metadatas"])
    assert [c.chunk_id for c in store.chunks_of([r["id"] for r in records])] == before
    assert sorted(before) == sorted(expected_chunk_ids(records, settings))


def test_paper_removed_from_its_file_leaves_the_index(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    path, records = corpus
    settings = Settings()
    ingest_paths([path], settings)
    report = ingest_paths([write_jsonl(path, records[:4])], settings)
    assert (report.removed, report.total_papers, report.chunks_embedded) == (1, 4, 0)
    assert records[4]["id"] not in {p.paper_id for p in papers(settings)}
    assert set(chunk_ids(Store(settings))) == expected_chunk_ids(records[:4], settings)


def test_other_file_keeps_its_papers(corpus: tuple[Path, list[dict[str, str]]], tmp_path: Path) -> None:
    path, _ = corpus
    settings = Settings()
    ingest_paths([path], settings)
    report = ingest_paths([write_jsonl(tmp_path / "more.jsonl", bundled_records(20, 22))], settings)
    assert (report.added, report.removed, report.total_papers) == (2, 0, 7)


@pytest.mark.parametrize("how", ["fresh", "model_copy"])
def test_changed_chunking_reads_no_stale_index(corpus: tuple[Path, list[dict[str, str]]], how: str) -> None:
    path, records = corpus
    settings = Settings()
    ingest_paths([path], settings)
    small = Settings(chunk_tokens=32) if how == "fresh" else settings.model_copy(update={"chunk_tokens": 32})
    assert small.index_name != settings.index_name
    assert Store(small).count_papers() == 0
    report = ingest_paths([path], small)
    assert (report.added, report.chunks_embedded) == (5, len(expected_chunk_ids(records, small)))
    assert set(chunk_ids(Store(small))) == expected_chunk_ids(records, small)
    assert set(chunk_ids(Store(settings))) == expected_chunk_ids(records, settings)


def test_llama_index_reads_the_chunks(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    from llama_index.core.vector_stores import VectorStoreQuery

    from rag.embed import embed_query, get_embedder

    path, records = corpus
    settings = Settings()
    ingest_paths([path], settings)
    question = records[1]["title"]
    query = VectorStoreQuery(query_embedding=embed_query(get_embedder(settings), question).tolist(), similarity_top_k=3)
    result = Store(settings).vector_store().query(query)
    [top, *_] = result.nodes
    assert top.metadata["paper_id"] == records[1]["id"]
    assert top.get_content() in records[1]["abstract"]
    assert {n.node_id for n in result.nodes} <= expected_chunk_ids(records, settings)


@pytest.mark.parametrize("batch", [4096, 12])
def test_progress_counts_up_to_every_paper_and_batches_change_nothing(
    corpus: tuple[Path, list[dict[str, str]]], batch: int
) -> None:
    path, records = corpus
    settings = Settings(ingest_batch=batch)
    heard: list[tuple[int, int]] = []
    report = ingest_paths([path], settings, progress=lambda done, total: heard.append((done, total)))
    assert heard[-1] == (5, 5) and {total for _, total in heard} == {5}
    assert [done for done, _ in heard] == sorted(done for done, _ in heard)
    assert any(0 < done < 5 for done, _ in heard), heard  # it moves while the encoder runs, not only at the end
    assert report.chunks_embedded == len(expected_chunk_ids(records, settings))
    assert set(chunk_ids(Store(settings))) == expected_chunk_ids(records, settings)


@pytest.mark.parametrize(
    ("abstract", "sentences"),
    [
        # NOTE: the sentence tokenizer ends a sentence after "e.g." or "i.e." when a capital follows
        ("Our method speeds up popular MLLMs, e.g. LLaVA, and InternVL2 models, by 2 times. Code is released.", 2),
        ("We map schemes to a middleware, i.e. the FastFlow library. It runs on RISC-V.", 2),
        ("Direct compression methods, e.g. efficient projectors, lose detail. We propose DPN.", 2),
        ("Trade-offs differ (e.g., reinforcement learning vs. Bayesian methods). We coin a term.", 2),
        ("It works. However, it is slow. (a) One; (b) two.", 3),
        # NOTE: and after "etc." whatever follows; an "etc." before a lower-case word ends no sentence
        ("It reports latency, throughput etc. to generate better code. It is fast.", 2),
        ("It reports latency, throughput etc. The model is fast.", 2),
    ],
)
def test_sentences_do_not_end_at_an_abbreviation(abstract: str, sentences: int) -> None:
    from rag.index import split_sentences

    found = split_sentences(abstract)
    assert len(found) == sentences, found
    assert " ".join(found) == abstract
