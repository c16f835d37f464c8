"""The search snapshot (rag/snapshot.py): a process opens an index without reading every paper record, and never
searches a snapshot of another version of the index."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag import snapshot
from rag.api import get_retriever, ingest_paths, read_paths
from rag.config import Settings
from rag.corpus import CorpusError
from rag.glossary import glossary
from rag.retrieve import Retriever
from rag.store import Store
from tests.servers import bundled_records, cli_env, run_cli, write_jsonl


def no_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("read every paper record")

    monkeypatch.setattr(Store, "all_papers", refuse)


def snapshots(settings: Settings) -> list[Path]:
    return sorted(p for p in (settings.home / "snapshots").glob("*/*") if not p.name.startswith("."))


@pytest.fixture()
def indexed(tmp_path: Path) -> tuple[Settings, Path]:
    settings = Settings(home=tmp_path / "home")
    corpus = write_jsonl(tmp_path / "papers.jsonl", bundled_records(0, 8))
    ingest_paths([corpus], settings)
    return settings, corpus


def test_an_ingested_index_opens_without_reading_every_record(
    indexed: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = indexed
    records, _ = Store(settings).all_papers()
    built = snapshot.build(records, glossary())
    no_full_scan(monkeypatch)
    retriever = Retriever(settings)
    assert retriever._snapshot.ids == built.ids
    assert retriever._snapshot.word_papers == built.word_papers
    for record in records:
        query = record.title
        assert np.allclose(retriever.lexical.scores(query), built.lexical.scores(query))
    hits = retriever.search(records[3].title)
    assert hits[0].paper_id == records[3].paper_id
    assert hits[0].title == records[3].title
    assert retriever.papers[records[5].paper_id].abstract == records[5].abstract
    assert len(retriever.papers) == len(records) and records[0].paper_id in retriever.papers


def test_an_unchanged_reingest_keeps_the_snapshot_and_a_changed_one_replaces_it(
    indexed: tuple[Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, corpus = indexed
    [first] = snapshots(settings)
    written = (first / "papers.json").stat().st_mtime_ns
    ingest_paths([corpus], settings)
    assert snapshots(settings) == [first]
    assert (first / "papers.json").stat().st_mtime_ns == written

    added = bundled_records(8, 9)[0]
    ingest_paths([write_jsonl(tmp_path / "more.jsonl", [added])], settings)
    [second] = snapshots(settings)
    assert second != first
    no_full_scan(monkeypatch)
    hits = Retriever(settings).search(added["title"])
    assert hits[0].paper_id == added["id"]


def test_an_ingest_makes_the_next_snapshot_from_the_last_without_reading_every_record(
    indexed: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Papers added, changed and removed: the snapshot made from the last one and the changes is the one every
    record would give, acronyms a changed abstract defines included."""
    settings, corpus = indexed
    records = bundled_records(0, 8)
    changed = {
        **records[2],
        "abstract": records[2]["abstract"] + " We release a Retrieval-Augmented Generation (RAG) kit.",
    }
    write_jsonl(corpus, [*records[:2], changed, *records[3:5], *records[6:], *bundled_records(8, 10)])
    with monkeypatch.context() as patched:
        no_full_scan(patched)
        report = ingest_paths([corpus], settings)
        got = Retriever(settings)._snapshot
    assert (report.added, report.updated, report.removed) == (2, 1, 1)
    records_now, _ = Store(settings).all_papers()
    built = snapshot.build(records_now, glossary())
    assert sorted(got.ids) == sorted(built.ids) and len(got.ids) == 9
    assert got.word_papers == built.word_papers
    assert got.lexical.acronyms == built.lexical.acronyms and "rag" in got.lexical.acronyms
    order = [got.ids.index(pid) for pid in built.ids]
    for query in [*(r.title for r in records_now), "a retrieval-augmented generation kit", "RAG"]:
        assert np.allclose(got.lexical.scores(query)[order], built.lexical.scores(query))
    # the sentences kept beside it are the stored ones, the changed paper's new sentence included
    assert got.sentences is not None and len(got.sentences.ends) == len(got.ids)
    for row, record in enumerate(Store(settings).get_papers(got.ids)):
        kept, stored = got.sentences.chunks(row, record), Store(settings).chunks_of([record.paper_id])
        assert [(c.chunk_id, c.text, c.position) for c in kept] == [(c.chunk_id, c.text, c.position) for c in stored]
        assert np.array_equal([c.embedding for c in kept], [c.embedding for c in stored])
    [record] = Store(settings).get_papers([changed["id"]])
    assert any("(RAG) kit" in c.text for c in got.sentences.chunks(got.ids.index(changed["id"]), record))


def test_an_embedded_index_answers_without_reading_its_sentences_collection(
    indexed: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded Chroma loads a collection's whole vector index when anything reads it (1.3 GB at 100,000 papers):
    search, answers and comparisons read the sentences kept beside the snapshot instead, with the same results."""
    from rag.answer import Answerer
    from rag.compare import Comparer

    settings, _ = indexed
    records, _ = Store(settings).all_papers()
    from_store = Retriever(settings)
    from_store._sentences = None
    queries = [r.title for r in records] + ["memory of a single accelerator", "graphics cards"]
    expected = [from_store.search(q) for q in queries]
    answers = [Answerer(from_store, settings).extractive(q) for q in queries[:3]]
    for name in ("query_chunks", "chunks_of", "chunk_texts", "count_chunks"):
        monkeypatch.setattr(Store, name, lambda *a, _n=name, **k: pytest.fail(f"read the sentences collection: {_n}"))
    retriever = Retriever(settings)
    for query, before in zip(queries, expected, strict=True):
        # NOTE: exact cosines here, Chroma's HNSW there: the same papers and sentences, scores equal to rounding
        hits = retriever.search(query)
        assert [(h.paper_id, h.best_sentence) for h in hits] == [(h.paper_id, h.best_sentence) for h in before]
        assert np.allclose([h.score for h in hits], [h.score for h in before], atol=1e-3)
    for question, answer in zip(queries[:3], answers, strict=True):
        again = Answerer(retriever, settings).extractive(question)
        assert again.answer == answer.answer
        assert [c.quote for c in again.citations] == [c.quote for c in answer.citations]
    table = Comparer(retriever, settings).compare("", paper_ids=[records[0].paper_id, records[1].paper_id])
    assert len(table.rows) == 2 and "[1]" in table.synthesis


def test_a_changed_glossary_rebuilds_the_lexical_index_from_the_kept_parts_and_keeps_it(
    indexed: tuple[Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAG_GLOSSARY set after an ingest: the next process indexes the everyday words for its terms, without an
    ingest or reading the records, and the process after it finds that index made."""
    settings, _ = indexed
    records, _ = Store(settings).all_papers()
    assert not Retriever(settings).lexical.scores("zorbified").any()
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"term": records[2].title, "everyday": ["a zorbified contraption"]}) + "\n")
    ours = Settings(home=settings.home, glossary=mine)
    no_full_scan(monkeypatch)
    retriever = Retriever(ours)
    scores = retriever.lexical.scores("zorbified")
    assert list(np.flatnonzero(scores)) == [retriever._ids.index(records[2].paper_id)]
    assert retriever.search("zorbified contraption")[0].paper_id == records[2].paper_id
    [folder] = snapshots(ours)
    assert json.loads((folder / "papers.json").read_text())["glossary"] == glossary(mine).digest
    monkeypatch.setattr(snapshot.Parts, "snapshot", lambda *_: pytest.fail("the lexical index was built again"))
    assert Retriever(ours).lexical.scores("zorbified").any()


def test_damaged_sentences_rebuild_the_snapshot(
    indexed: tuple[Settings, Path], caplog: pytest.LogCaptureFixture
) -> None:
    settings, _ = indexed
    [folder] = snapshots(settings)
    (folder / "sentence_offsets.npy").write_bytes(b"\x93NUMPY cut short")
    with caplog.at_level(logging.WARNING, logger="rag.snapshot"):
        retriever = Retriever(settings)
    assert "unreadable" in caplog.text
    records, _ = Store(settings).all_papers()
    assert retriever._sentences is not None and len(retriever._sentences.ends) == len(records)
    assert retriever.search(records[2].title)[0].paper_id == records[2].paper_id


def test_a_first_run_that_finds_the_index_made_leaves_its_version(indexed: tuple[Settings, Path]) -> None:
    """Several first runs at once index the corpus once; the others write nothing, so readers keep their snapshot."""
    from rag.index import ingest
    from rag.locks import version

    settings, corpus = indexed
    before = version(settings)
    ingest(read_paths([corpus]), settings, if_empty=True)
    assert version(settings) == before
    ingest(read_paths([corpus]), settings)
    assert version(settings) != before


def test_after_an_ingest_that_failed_one_reader_catches_up_and_the_next_opens_its_snapshot(
    indexed: tuple[Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.locks import version

    settings, _ = indexed
    record = bundled_records(0, 1)[0]
    clash = [write_jsonl(tmp_path / f"{n}.jsonl", [{**record, "abstract": f"Text {n}."}]) for n in (1, 2)]
    with pytest.raises(CorpusError):  # NOTE: the writer ends without a digest: the version is a bare nonce
        ingest_paths(clash, settings)
    assert "." not in version(settings)
    no_full_scan(monkeypatch)
    assert len(Retriever(settings).papers) == 8
    monkeypatch.setattr(Store, "paper_hashes", lambda self: pytest.fail("caught up twice"))
    assert len(Retriever(settings).papers) == 8


def test_a_damaged_snapshot_is_rebuilt_from_the_records(
    indexed: tuple[Settings, Path], caplog: pytest.LogCaptureFixture
) -> None:
    settings, _ = indexed
    [folder] = snapshots(settings)
    (folder / "papers.json").write_text('{"ids": ["trunc', encoding="utf-8")
    (folder.parent / f".{folder.name}.123.tmp").mkdir()  # a writer killed before it renamed its copy into place
    with caplog.at_level(logging.WARNING, logger="rag.snapshot"):
        retriever = Retriever(settings)
    assert "unreadable" in caplog.text
    records, _ = Store(settings).all_papers()
    assert retriever._snapshot.ids == [p.paper_id for p in records]
    assert json.loads((folder / "papers.json").read_text())["ids"] == retriever._snapshot.ids


def test_damaged_parts_make_the_next_ingest_read_every_record(
    indexed: tuple[Settings, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, _ = indexed
    [folder] = snapshots(settings)
    (folder / "parts.npz").write_bytes(b"PK\x03\x04 cut short")
    added = bundled_records(8, 9)[0]
    with caplog.at_level(logging.WARNING, logger="rag.snapshot"):
        ingest_paths([write_jsonl(tmp_path / "more.jsonl", [added])], settings)
    assert "parts" in caplog.text and "unreadable" in caplog.text
    records, _ = Store(settings).all_papers()
    got = Retriever(settings)._snapshot
    assert sorted(got.ids) == sorted(p.paper_id for p in records) and added["id"] in got.ids


def test_an_index_written_before_snapshots_gets_one_on_first_open(
    indexed: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = indexed
    for path in [*(settings.home / "locks").glob("version-*"), *(settings.home / "snapshots").glob("*")]:
        path.unlink() if path.is_file() else shutil.rmtree(path)
    first = Retriever(settings)
    assert len(snapshots(settings)) == 1
    no_full_scan(monkeypatch)
    assert Retriever(settings)._snapshot.ids == first._snapshot.ids


def test_a_client_of_a_chroma_server_sees_another_clients_ingest_on_its_next_search(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without reading every record: its snapshot is updated with the papers changed, found by their hashes."""
    monkeypatch.setenv("RAG_CHROMA_URL", chroma_server)
    monkeypatch.setenv("RAG_COLLECTION_PREFIX", "snapshot")  # NOTE: the server is shared with other tests
    mine = tmp_path / "mine"
    monkeypatch.setenv("RAG_HOME", str(mine))
    first = write_jsonl(tmp_path / "first.jsonl", bundled_records(0, 4))
    ingested = run_cli("ingest", str(first), env=cli_env(RAG_HOME=str(tmp_path / "theirs")))
    assert ingested.returncode == 0, ingested.stderr
    settings = Settings()
    assert len(get_retriever(settings).papers) == 4

    added = bundled_records(4, 5)[0]
    more = write_jsonl(tmp_path / "more.jsonl", [added])
    ingested = run_cli("ingest", str(more), env=cli_env(RAG_HOME=str(tmp_path / "theirs")))
    assert ingested.returncode == 0, ingested.stderr
    with monkeypatch.context() as patched:
        no_full_scan(patched)  # NOTE: my snapshot is brought up to date with the one paper added, read by id
        retriever = get_retriever(settings)
    assert len(retriever.papers) == 5
    assert retriever.search(added["title"])[0].paper_id == added["id"]
    records, _ = Store(settings).all_papers()
    assert retriever._snapshot.word_papers == snapshot.build(records, glossary()).word_papers
    assert len(snapshots(settings)) == 1  # kept for the next command, the old one deleted


def test_an_index_on_a_chroma_server_without_a_version_gets_one_on_first_open(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when a server is started on files an embedded index wrote: no version record on the server."""
    from rag.locks import _LEASES, _version_key
    from rag.store import leases

    monkeypatch.setenv("RAG_CHROMA_URL", chroma_server)
    monkeypatch.setenv("RAG_COLLECTION_PREFIX", "unversioned")
    settings = Settings(home=tmp_path / "client")
    ingest_paths([write_jsonl(tmp_path / "papers.jsonl", bundled_records(0, 4))], settings)
    leases(settings, _LEASES).delete(ids=[_version_key(settings)])
    shutil.rmtree(settings.home / "snapshots")
    first = Retriever(settings)
    assert len(snapshots(settings)) == 1
    no_full_scan(monkeypatch)
    assert Retriever(settings)._snapshot.ids == first._snapshot.ids


def test_kept_sentences_round_trip_and_find_the_nearest_like_a_full_search(tmp_path: Path) -> None:
    from rag.models import Paper
    from rag.sentences import Sentences
    from rag.store import Chunk

    rng = np.random.default_rng(0)
    papers = [Paper(paper_id=f"p{i}", title=f"T{i}", abstract="A.") for i in range(30)]
    chunks = {}
    for i, paper in enumerate(papers):
        vectors = rng.standard_normal((i % 7, 16)).astype(np.float32)  # NOTE: some papers have no sentence at all
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks[paper.paper_id] = [Chunk(f"c{i}.{k}", paper.paper_id, f"Sentence {k} of {i}, é.", k, v)
                                  for k, v in enumerate(vectors)]  # fmt: skip
    ids = [p.paper_id for p in papers]
    (tmp_path / "a").mkdir()
    Sentences.write(tmp_path / "a", ids, lambda some: [c for pid in some for c in chunks[pid]])
    kept = Sentences.load(tmp_path / "a", len(ids))
    assert kept is not None and len(kept) == sum(len(c) for c in chunks.values())
    assert [c.text for c in kept.chunks(9, papers[9])] == [c.text for c in chunks["p9"]]
    query = rng.standard_normal(16).astype(np.float32)
    query /= np.linalg.norm(query)
    rows = [3, 9, 12, 20, 27]
    every = [(float(c.embedding @ query), ids.index(pid), c.position) for pid in ids for c in chunks[pid]
             if ids.index(pid) in rows]  # fmt: skip
    top = sorted(every, reverse=True)[:6]
    expected = {}
    for similarity, row, position in top:
        expected.setdefault(row, (similarity, position))
    found = kept.nearest(query, rows, 6)
    assert list(found) == list(expected)
    assert all(np.isclose(found[r][0], expected[r][0]) and found[r][1] == expected[r][1] for r in expected)
    # an update keeps the unchanged papers' sentences and reads only the changed ones
    changed = {**chunks, "p4": [Chunk("x", "p4", "New.", 0, chunks["p9"][0].embedding)]}
    read: list[str] = []

    def store(some: Sequence[str]) -> list[Chunk]:
        read.extend(some)
        return [c for pid in some for c in changed[pid]]

    (tmp_path / "b").mkdir()
    Sentences.write(tmp_path / "b", ids[1:], store, fresh={"p4"}, before=kept, before_ids=ids)
    again = Sentences.load(tmp_path / "b", len(ids) - 1)
    assert read == ["p4"] and again is not None
    assert [c.text for c in again.chunks(3, papers[4])] == ["New."]
    assert [c.text for c in again.chunks(8, papers[9])] == [c.text for c in chunks["p9"]]
    with pytest.raises(ValueError):
        Sentences.load(tmp_path / "b", len(ids))
