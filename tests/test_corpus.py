"""Corpus readers: every format, the bundled page, and bad input rejected with file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.corpus import CorpusError, make_paper_id, read_file, read_text
from rag.text import plain
from tests.conftest import BUNDLED

ABSTRACT = "We study pipeline parallelism for training large models. " * 5


def test_bundled_corpus_has_168_papers_with_clean_first_title() -> None:
    result = read_file(BUNDLED)
    assert len(result.papers) == 168
    assert result.papers[0].title == "LookupViT: Compressing visual information to a limited number of tokens"
    assert all(len(p.abstract) > 200 and len(p.title) < 200 for p in result.papers)
    assert len({p.paper_id for p in result.papers}) == 168


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.jsonl", json.dumps({"title": "T one", "abstract": ABSTRACT, "year": 2024, "authors": ["A", "B"]})),
        ("a.json", json.dumps([{"title": "T one", "abstract": ABSTRACT, "year": "2024", "authors": "A and B"}])),
        ("a.json", json.dumps({"papers": [{"Title": "T one", "Abstract": ABSTRACT, "year": 2024, "authors": "A; B"}]})),
        ("a.csv", f'title,abstract,year,authors\n"T one","{ABSTRACT}",2024,"A; B"\n'),
        ("a.bib", f"@article{{key1, title={{T one}}, abstract={{{ABSTRACT}}}, year={{2024}}, author={{A and B}}}}"),
        ("a.txt", f"junk header\nT one\n{ABSTRACT}\n"),
    ],
)
def test_formats_give_the_same_paper(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    [paper] = read_file(path).papers
    assert (paper.title, paper.abstract) == ("T one", ABSTRACT.strip())
    if name != "a.txt":
        assert (paper.year, paper.authors) == (2024, ["A", "B"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", "", "file is empty"),
        ("blank.jsonl", "   \n\n", "no text"),
        ("bin.jsonl", b"\x00\x01\x02binary", "looks binary"),
        ("latin1.csv", "title,abstract\nCaf\xe9,x\n".encode("latin-1"), "latin1.csv:2: not valid UTF-8"),
        ("bad.jsonl", '{"title": "a", "abstract": "b"}\n{"title": oops}\n', "bad.jsonl:2: invalid JSON"),
        ("trunc.json", '[{"title": "a", "abstract": "b"', "trunc.json:1: invalid JSON"),
        ("cols.csv", "name,text\na,b\n", "cols.csv:1: needs 'title' and 'abstract' columns"),
        ("notes.docx", "whatever", "unknown format '.docx'"),
        ("none.jsonl", '{"title": "only a title"}\n', "no papers with a title and an abstract (1 missing abstract)"),
        ("bad.bib", "@article{k, title={T}, abstract={unclosed", "malformed BibTeX"),
        ("scalar.jsonl", "[1, 2]\n", "scalar.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_files_rejected_whole_with_one_line(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CorpusError) as err:
        read_file(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and name in str(err.value)


def test_skipped_records_are_counted(tmp_path: Path) -> None:
    rows = [
        {"title": "Good", "abstract": ABSTRACT},
        {"title": "Good", "abstract": ABSTRACT},
        {"title": "", "abstract": ABSTRACT},
        {"title": "No abstract"},
        {"title": "Huge", "abstract": "word " * 10_000},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = read_file(path)
    assert [p.title for p in result.papers] == ["Good"]
    assert dict(result.skipped) == {
        "duplicate": 1,
        "missing title": 1,
        "missing abstract": 1,
        "longer than 20,000 characters": 1,
    }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"own_id": "P-7"}, "P-7"),
        ({"url": "https://arxiv.org/abs/2401.10241v2"}, "arxiv:2401.10241"),
        ({"doi": "10.1145/3600006.3613165"}, "doi:10.1145/3600006.3613165"),
        ({}, "zero-bubble-pipeline-parallelism-"),
    ],
)
def test_paper_ids_are_stable(kwargs: dict[str, str], expected: str) -> None:
    pid = make_paper_id("Zero Bubble Pipeline Parallelism", **kwargs)
    assert pid.startswith(expected)
    assert pid == make_paper_id("Zero Bubble Pipeline Parallelism", **kwargs)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=2000), suffix=st.sampled_from([".txt", ".jsonl", ".json", ".csv", ".bib"]))
def test_parsers_never_crash_on_arbitrary_text(text: str, suffix: str) -> None:
    try:
        result = read_text(text, f"fuzz{suffix}", suffix)
    except CorpusError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(p.title and p.abstract for p in result.papers)


@settings(max_examples=60, deadline=None)
@given(title=st.text(min_size=1, max_size=80).filter(lambda s: s.strip() and "\n" not in s and "\r" not in s))
def test_jsonl_round_trips_any_title(title: str) -> None:
    result = read_text(json.dumps({"title": title, "abstract": ABSTRACT}), "t.jsonl", ".jsonl")
    # NOTE: as text: spacing collapsed and LaTeX turned into text ('\\A' → 'A', '2\\times' → '2×')
    assert result.papers[0].title == plain(" ".join(title.split()))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("with up to 2.4\\times speedup", "with up to 2.4× speedup"),
        ("LookupViT provides 2times reduction in FLOPs", "LookupViT provides 2× reduction in FLOPs"),
        ("Muon achieves sim!2times computational efficiency", "Muon achieves ~2× computational efficiency"),
        ("(2) {\\Lambda}-shaped attention", "(2) Λ-shaped attention"),
        ("M^{3}ViT achieves higher accuracy", "M³ViT achieves higher accuracy"),
        ("We introduce {De}coupled {Mo}mentum (DeMo)", "We introduce Decoupled Momentum (DeMo)"),
        ("Large Language Models~(MLLMs) is crucial", "Large Language Models (MLLMs) is crucial"),
        ("existing strategies (\\eg, average pool)", "existing strategies (e.g., average pool)"),
        # NOTE: English and mathematics stay as written
        ("reduces memory by 2.4 times, while", "reduces memory by 2.4 times, while"),
        ("sometimes (~100% utilisation) over {0, 1}", "sometimes (~100% utilisation) over {0, 1}"),
    ],
)
def test_latex_left_in_abstracts_reads_as_text(tmp_path: Path, raw: str, shown: str) -> None:
    path = tmp_path / "papers.jsonl"
    record = {"title": "A {Title} with 2\\times", "abstract": f"{raw}. And a second sentence for length."}
    path.write_text(json.dumps(record))
    paper = read_file(path).papers[0]
    assert paper.abstract == f"{shown}. And a second sentence for length."
    assert paper.title == "A Title with 2×"
    assert paper.paper_id == make_paper_id("A {Title} with 2\\times")  # NOTE: ids do not move


def test_no_latex_left_in_the_bundled_corpus() -> None:
    text = " ".join(f"{p.title} {p.abstract}" for p in read_file(BUNDLED).papers)
    assert not re.search(r"\\[A-Za-z]|\d(?:\\times|times)\b|sim!|\^\{|\{[A-Za-z]", text)
