"""Corpus readers: every format, the bundled page, and bad input rejected with file and line."""

from __future__ import annotations

import io
import json
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.corpus import (
    MAX_FILE_BYTES,
    MAX_RECORD_CHARS,
    CorpusError,
    ReadResult,
    make_paper_id,
    read_file,
    read_path,
    read_stream,
    read_text,
)
from rag.text import plain
from tests.conftest import BUNDLED
from tests.servers import run_cli

ABSTRACT = "We study pipeline parallelism for training large models. " * 5
LONG_TITLE = "Zero Bubble Pipeline Parallelism for the Training of Large Models at Scale on Clusters"
RIS = f"TY  - JOUR\nTI  - T one\nAU  - A\nAU  - B\nPY  - 2024\nAB  - {ABSTRACT}\nER  - \n"


def make_pdf(
    title: str = "T one",
    heading: str = "Abstract",
    abstract: str = ABSTRACT,
    after: str = "1 Introduction",
    meta_title: str | None = None,
    password: str | None = None,
    stamp: bool = False,
    compress: bool = True,
) -> bytes:
    """A real PDF laid out as a paper: title, authors, the abstract under its heading, the first section."""
    pdf = FPDF()
    pdf.core_fonts_encoding = "windows-1252"  # NOTE: has the dash of "Abstract—"
    pdf.set_compression(compress)
    pdf.add_page()
    pdf.set_author("A and B")
    if meta_title:
        pdf.set_title(meta_title)
    if password is not None:
        pdf.set_encryption(owner_password="owner", user_password=password)
    if stamp:  # arXiv's margin stamp: large type, turned
        pdf.set_font("Times", size=20)
        with pdf.rotation(90, x=10, y=250):
            pdf.text(10, 250, "arXiv:2401.10241v2 [cs.LG] 20 Jan 2024")
    body = [(18, title), (11, "A, B\nUniversity of Somewhere"), (12, heading), (10, abstract), (12, after)]
    for size, text in [*body, (10, "Body text. " * 40)]:
        if text:
            pdf.set_font("Helvetica", size=size)
            pdf.multi_cell(0, size / 2, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


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
        ("a.ris", RIS),
        (
            "a.ris",
            f"TY  - JOUR\r\nT1  - T one\r\nA1  - A\r\nA1  - B\r\nY1  - 2024///\r\nN2  - {ABSTRACT}\r\nER  - \r\n",
        ),
        ("a.ris", RIS.replace(ABSTRACT, ABSTRACT.replace("parallelism ", "parallelism\n", 1))),  # on two lines
        (
            "a.json",  # CSL JSON, as Zotero exports it
            json.dumps(
                [
                    {
                        "id": "http://zotero.org/users/1/items/ABCD",
                        "type": "article-journal",
                        "title": "T one",
                        "abstract": ABSTRACT,
                        "author": [{"family": "A"}, {"literal": "B"}],
                        "issued": {"date-parts": [[2024, 5]]},
                    }
                ]
            ),
        ),
        ("a.pdf", make_pdf()),
    ],
)
def test_formats_give_the_same_paper(tmp_path: Path, name: str, content: str | bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    [paper] = read_file(path).papers
    assert (paper.title, paper.abstract) == ("T one", ABSTRACT.strip())
    # NOTE: a text page has no authors or year; a PDF has its metadata's authors, and no year anyone wrote down
    expected = {"a.txt": (None, []), "a.pdf": (None, ["A", "B"])}.get(name, (2024, ["A", "B"]))
    assert (paper.year, paper.authors) == expected


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
        ("csl.json", json.dumps([{"title": ["T"], "issued": {"date-parts": [[2024]]}}]), "record 1: title is a list"),
        ("none.ris", "TI  - T\nAB  - text\n", "none.ris: no RIS records"),
        ("open.ris", "x\nTY  - JOUR\nTI  - T\nAB  - text\n", "open.ris:2: RIS record has no 'ER  -' line"),
        ("merged.ris", "TY  - JOUR\nTI  - T\nTY  - JOUR\nTI  - U\nER  - \n", "merged.ris:1: RIS record has no"),
        ("stray.ris", "TY  - JOUR\nTI  - T\nER  - \nTY  - JOUR\nstray\nER  - \n", "stray.ris:5: expected a field"),
        ("noabs.ris", "TY  - JOUR\nTI  - T\nER  - \n", "no papers with a title and an abstract (1 missing abstract)"),
        ("damaged.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", "damaged.pdf: damaged or unsupported PDF"),
        ("text.pdf", "Title\nAbstract\nNot a PDF at all.\n", "text.pdf: damaged or unsupported PDF"),
        ("locked.pdf", make_pdf(password="secret"), "locked.pdf: PDF needs a password"),
    ],
)
def test_bad_files_rejected_whole_with_one_line(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CorpusError) as err:
        read_file(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and name in str(err.value)


def test_files_over_the_size_limit_are_rejected_unread(tmp_path: Path) -> None:
    for name in ("big.pdf", "big.ris"):
        with (tmp_path / name).open("wb") as f:
            f.truncate(MAX_FILE_BYTES + 1)  # NOTE: sparse: no disk used
        with pytest.raises(CorpusError, match=rf"{name}: 268 MB is over the 256 MiB limit"):
            read_file(tmp_path / name)


@pytest.mark.parametrize(
    ("pdf", "title"),
    [
        (make_pdf(heading="ABSTRACT", after="I. INTRODUCTION"), "T one"),
        (make_pdf(heading="", abstract=f"Abstract—{ABSTRACT}", after="Index Terms—pipelines, training"), "T one"),
        (make_pdf(heading="", abstract=f"Abstract. {ABSTRACT}", after="Keywords: pipelines"), "T one"),
        (make_pdf(title=LONG_TITLE), LONG_TITLE),  # on two lines
        (make_pdf(title="Zero bubble", meta_title="Zero Bubble"), "Zero Bubble"),
        (make_pdf(meta_title="Microsoft Word - draft3.docx"), "T one"),
        (make_pdf(stamp=True), "T one"),
    ],
)
def test_pdf_title_and_abstract_from_the_first_page(tmp_path: Path, pdf: bytes, title: str) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(pdf)
    [paper] = read_file(path).papers
    assert (paper.title, paper.abstract, paper.locator) == (title, ABSTRACT.strip(), "page 1")


@pytest.mark.parametrize(
    "pdf",
    [
        make_pdf(heading="", after="Introduction"),  # no heading
        make_pdf(after=""),  # nothing marks where the abstract ends
        make_pdf(heading="", abstract="Abstract reasoning is what we study in this paper. " * 3),  # not a heading
    ],
)
def test_a_pdf_without_a_findable_abstract_is_skipped_by_name(tmp_path: Path, pdf: bytes) -> None:
    path = tmp_path / "no-abstract.pdf"
    path.write_bytes(pdf)
    result = read_file(path)
    assert result.papers == []
    assert dict(result.skipped) == {f"PDF with no abstract found ({path})": 1}


def test_a_pdf_that_only_restricts_printing_is_read(tmp_path: Path) -> None:
    path = tmp_path / "restricted.pdf"
    path.write_bytes(make_pdf(password=""))
    assert [p.title for p in read_file(path).papers] == ["T one"]


def test_a_folder_gives_every_corpus_file_in_it_in_order(tmp_path: Path) -> None:
    files = {
        "b.ris": RIS.replace("T one", "T two"),
        "a/c.pdf": make_pdf(title="T three"),
        "a/none.pdf": make_pdf(heading=""),
        "notes.md": "# reading list",
        ".hidden/d.jsonl": "not read",
        "a/.e.json": "not read",
    }
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    results = read_path(tmp_path)
    assert [r.source for r in results] == [str(tmp_path / n) for n in ("a/c.pdf", "a/none.pdf", "b.ris")]
    assert [p.title for r in results for p in r.papers] == ["T three", "T two"]
    assert results[1].skipped == {f"PDF with no abstract found ({tmp_path / 'a/none.pdf'})": 1}
    assert [r.source for r in read_path(tmp_path / "b.ris")] == [str(tmp_path / "b.ris")]


def test_rag_ingest_reads_a_folder_and_names_the_pdf_it_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "library"
    (folder / "pdfs").mkdir(parents=True)
    (folder / "zotero.ris").write_text(RIS)
    (folder / "pdfs" / "paper.pdf").write_bytes(make_pdf(title="T three"))
    (folder / "pdfs" / "scan.pdf").write_bytes(make_pdf(heading=""))
    ingest = run_cli("ingest", str(folder))
    assert ingest.returncode == 0, ingest.stderr
    assert (
        "2 added" in ingest.stdout and f"PDF with no abstract found ({folder / 'pdfs' / 'scan.pdf'})" in ingest.stdout
    )
    listed = run_cli("papers", "--json")
    assert sorted(json.loads(line)["title"] for line in listed.stdout.splitlines()) == ["T one", "T three"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no corpus files in this folder (looked for .bib, .csv, .json"),
        ({"notes.md": "x", ".git/config.json": "{}"}, "no corpus files in this folder"),
        ({"a.ris": RIS, "sub/b.jsonl": "{oops"}, "b.jsonl:1: invalid JSON"),
    ],
)
def test_a_folder_without_readable_corpus_files_is_one_line(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    folder = tmp_path / "papers"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    with pytest.raises(CorpusError) as err:
        read_path(folder)
    assert message in str(err.value) and "papers" in str(err.value) and "\n" not in str(err.value)


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


CSL = {"title": "T one", "abstract": ABSTRACT, "author": [{"family": "Smith", "given": "Jane"}]}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.bib", f"@article{{smith24, title={{T one}}, abstract={{{ABSTRACT}}}}}", "smith24"),
        (
            "a.bib",
            f"@article{{smith24, title={{T one}}, abstract={{{ABSTRACT}}}, eprint={{2401.10241}}}}",
            "arxiv:2401.10241",
        ),
        ("a.json", json.dumps([{**CSL, "id": "smith24"}]), "smith24"),
        (
            "a.json",
            json.dumps([{**CSL, "id": "smith24", "DOI": "10.1145/3600006.3613165"}]),
            "doi:10.1145/3600006.3613165",
        ),
        (
            "a.json",
            json.dumps([{**CSL, "id": "smith24", "URL": "https://arxiv.org/abs/2401.10241"}]),
            "arxiv:2401.10241",
        ),
        ("a.ris", RIS.replace("ER  -", "ID  - 7\nER  -"), make_paper_id("T one")),  # EndNote numbers: 1, 2, 3...
        ("a.ris", RIS.replace("ER  -", "DO  - 10.1145/3600006.3613165\nER  -"), "doi:10.1145/3600006.3613165"),
        (
            "a.ris",
            RIS.replace("ER  -", "UR  - https://arxiv.org/abs/2401.10241; https://x.org\nER  -"),
            "arxiv:2401.10241",
        ),
    ],
)
def test_a_reference_managers_key_is_the_id_only_without_doi_or_arxiv(name: str, content: str, expected: str) -> None:
    [paper] = read_text(content, name, Path(name).suffix).papers
    assert paper.paper_id == expected


@pytest.mark.parametrize(
    ("item", "authors", "year"),
    [
        ({"author": [{"family": "Smith", "given": "Jane"}, {"literal": "OpenAI"}]}, ["Smith, Jane", "OpenAI"], None),
        ({"author": [{"given": "Jane"}], "issued": {"date-parts": [["2023", 5, 1]]}}, ["Jane"], 2023),
        ({"issued": {"raw": "May 2022"}}, ["Smith, Jane"], 2022),
        ({"issued": {"literal": "2021"}}, ["Smith, Jane"], 2021),
        ({"issued": {"date-parts": []}}, ["Smith, Jane"], None),
    ],
)
def test_csl_names_and_dates(item: dict[str, object], authors: list[str], year: int | None) -> None:
    [paper] = read_text(json.dumps([{**CSL, **item}]), "zotero.json", ".json").papers
    assert (paper.authors, paper.year) == (authors, year)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=2000), suffix=st.sampled_from([".txt", ".jsonl", ".json", ".csv", ".bib", ".ris"]))
def test_parsers_never_crash_on_arbitrary_text(text: str, suffix: str) -> None:
    try:
        result = read_text(text, f"fuzz{suffix}", suffix)
    except CorpusError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(p.title and p.abstract for p in result.papers)


RIS_LINE = st.one_of(
    st.builds(
        "{}  - {}".format,
        st.sampled_from(["TY", "TI", "T1", "AB", "AU", "PY", "DA", "UR", "DO", "ER", "XY"]),
        st.text(max_size=20),
    ),
    st.sampled_from(["", " ", "ER  -", "TY", "TY  -"]),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(RIS_LINE, max_size=30), newline=st.sampled_from(["\n", "\r\n"]))
def test_ris_never_crashes_on_tag_lines_in_any_order(lines: list[str], newline: str) -> None:
    try:
        result = read_text(newline.join(lines), "fuzz.ris", ".ris")
    except CorpusError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.ris")
    else:
        assert all(p.title and p.abstract for p in result.papers)


@settings(max_examples=60, deadline=None)
@given(title=st.text(min_size=1, max_size=80).filter(lambda s: s.strip() and "\n" not in s and "\r" not in s))
def test_jsonl_round_trips_any_title(title: str) -> None:
    result = read_text(json.dumps({"title": title, "abstract": ABSTRACT}), "t.jsonl", ".jsonl")
    # NOTE: as text: spacing collapsed and LaTeX turned into text ('\\A' → 'A', '2\\times' → '2×')
    assert result.papers[0].title == plain(" ".join(title.split()))


def test_jsonl_lines_end_at_line_breaks_only(tmp_path: Path) -> None:
    """A JSON string may hold U+2028, U+2029 or U+0085 unescaped; they do not end the record's line."""
    records = [{"title": f"Paper {n}", "abstract": f"First part{sep}second part. {ABSTRACT}"}
               for n, sep in enumerate(["\u2028", "\u2029", "\x85"])]  # fmt: skip
    path = tmp_path / "seps.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert [p.title for p in read_file(path).papers] == ["Paper 0", "Paper 1", "Paper 2"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("with up to 2.4\\times speedup", "with up to 2.4× speedup"),
        ("LookupViT provides 2times reduction in FLOPs", "LookupViT provides 2× reduction in FLOPs"),
        ("Muon achieves sim!2times computational efficiency", "Muon achieves ~2× computational efficiency"),
        ("reduce computation consumption by sim75\\% in", "reduce computation consumption by ~75% in"),
        ("(2) {\\Lambda}-shaped attention", "(2) Λ-shaped attention"),
        ("M^{3}ViT achieves higher accuracy", "M³ViT achieves higher accuracy"),
        ("We introduce {De}coupled {Mo}mentum (DeMo)", "We introduce Decoupled Momentum (DeMo)"),
        ("Large Language Models~(MLLMs) is crucial", "Large Language Models (MLLMs) is crucial"),
        ("existing strategies (\\eg, average pool)", "existing strategies (e.g., average pool)"),
        ("among models with leq 4B parameters", "among models with ≤ 4B parameters"),
        ('we propose a ``what or how to generate" algorithm', "we propose a “what or how to generate” algorithm"),
        ("a ``good'' model", "a “good” model"),
        # NOTE: English and mathematics stay as written
        ("reduces memory by 2.4 times, while", "reduces memory by 2.4 times, while"),
        ("sometimes (~100% utilisation) over {0, 1}", "sometimes (~100% utilisation) over {0, 1}"),
        ("sim2real transfer of 3 policies", "sim2real transfer of 3 policies"),
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
    assert not re.search(r"\\[A-Za-z]|\d(?:\\times|times)\b|\bsim(?:!|\d)|\^\{|\{[A-Za-z]|``", text)


# --- streaming: a record at a time -------------------------------------------------------------


class Trickle(io.StringIO):
    """Text that comes a few characters a read, as from a pipe: what no reader may depend on."""

    def __init__(self, text: str, size: int) -> None:
        super().__init__(text, newline="")
        self.size = size

    def read(self, size: int | None = -1) -> str:
        return super().read(size if size is None or size < 0 else min(size, self.size))


def outcome(read: Callable[[], ReadResult]) -> object:
    """What a reader gives: its papers and skips, or its one-line error."""
    try:
        result = read()
    except CorpusError as exc:
        return str(exc)
    return [p.model_dump() for p in result.papers], dict(result.skipped)


def json_loads_error(name: str, text: str) -> str:
    """The error reading the whole text with json.loads gives, as the reader words it."""
    with pytest.raises(json.JSONDecodeError) as err:
        json.loads(text)
    return f"{name}:{err.value.lineno}: invalid JSON ({err.value.msg}, column {err.value.colno})"


GOOD = json.dumps({"title": "T one", "abstract": ABSTRACT})
HUGE = json.dumps({"title": "Huge", "abstract": "word " * 10_000})
BIB = f"@article{{k1,\n  title = {{T one}},\n  abstract = {{{ABSTRACT}}}\n}}\n"
STREAMED = [
    ("a.json", f"[\n {GOOD},\n {HUGE},\n {GOOD.replace('T one', 'T two')}\n]\n", ["T one", "T two"]),
    ("a.json", f'[\n {GOOD},\n  {{"title": tru}}\n]', None),
    ("a.json", f"[{GOOD} {GOOD}]", None),
    ("a.json", f"[{GOOD}] x", None),
    ("a.json", f'[{GOOD}, {{"title": "unterminated', None),
    ("a.json", f"[{GOOD},]", None),
    ("a.json", "  [ ]  ", "a.json: no papers with a title and an abstract (nothing recognisable)"),
    ("a.json", f'[{GOOD}, "text"]', "a.json: record 2 is not an object with title and abstract"),
    (
        "a.csv",
        "title,abstract\n" + f'"T one","{ABSTRACT}"\n' * 200 + '"T two","two\nlines. ' + ABSTRACT + '"\n',
        ["T one", "T two"],
    ),
    ("a.bib", f"@string{{mac = {{{ABSTRACT}}}}}\n\n" + BIB.replace(f"{{{ABSTRACT}}}", "mac"), ["T one"]),
    (
        "a.bib",
        f'% a note\n@comment{{x}}\n@preamble{{"p"}}\n{BIB}see @misc{{k2, title={{T two}}, abstract={{{ABSTRACT}}}}}\n',
        ["T one", "T two"],
    ),
    ("a.bib", BIB.replace("  abstract", "  note = {a\r@misc{k2}},\n  abstract"), ["T one"]),  # not at a line's start
    ("a.bib", "@article{open,\n  title = {T\n" + BIB, "a.bib:1: malformed BibTeX entry (ParsingFailedBlock)"),
    ("a.bib", BIB + BIB.replace("T one", "T two"), "a.bib:5: malformed BibTeX entry (DuplicateBlockKeyBlock)"),
    (
        "a.bib",
        "@string{m = {x}}\n" + BIB + "@string{m = {y}}\n",
        "a.bib:6: malformed BibTeX entry (DuplicateBlockKeyBlock)",
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), STREAMED)
def test_a_file_read_a_few_characters_at_a_time_reads_the_same(
    name: str, content: str, expected: list[str] | str | None
) -> None:
    """JSON arrays, CSV and BibTeX are parsed a record at a time; what they give never depends on where reads end,
    and a JSON error has json.loads's words, line and column."""
    suffix = Path(name).suffix
    whole = outcome(lambda: read_text(content, name, suffix))
    for size in (1, 2, 3, 7, 64):
        assert outcome(lambda size=size: read_stream(Trickle(content, size), name, suffix)) == whole
    if isinstance(expected, list):
        assert isinstance(whole, tuple) and [p["title"] for p in whole[0]] == expected
    else:
        assert whole == (expected or json_loads_error(name, content))


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_byte_that_is_not_utf8_is_placed_deep_in_a_large_file(tmp_path: Path, bom: bytes) -> None:
    rows = b"".join(f'"T {i}","{ABSTRACT}"\n'.encode() for i in range(1, 6000))
    bad = bom + b"title,abstract\n" + rows + b'"Caf\xe9","x"\n'
    path = tmp_path / "big.csv"
    path.write_bytes(bad + rows)
    with pytest.raises(CorpusError) as err:
        read_file(path)
    assert str(err.value) == f"{path}:6001: not valid UTF-8 (byte {len(bad) - 7}); re-save the file as UTF-8"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("big.json", f'[{GOOD}, {{"title": "{"x" * MAX_RECORD_CHARS}"}}]', "big.json:1: record 2 is over 16 MiB"),
        ("big.json", f'{{"papers": [{GOOD}], "x": "{"x" * MAX_RECORD_CHARS}"}}', "big.json: a JSON object over 16 MiB"),
        ("big.bib", BIB + f"@misc{{k2, note = {{{'x' * MAX_RECORD_CHARS}}}}}", "big.bib:5: a BibTeX entry over 16 MiB"),
    ],
)
def test_a_record_over_the_limit_is_one_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CorpusError) as err:
        read_file(path)
    assert str(err.value).startswith(f"{path.parent}/{message}") and "\n" not in str(err.value)


NOTE = "A note that is not an abstract. " * 6


def many_records(path: Path, n: int) -> Path:
    """n records that are skipped (no abstract), then one paper: what is kept stays small, so memory is the parse's."""
    rows = [{"title": f"Skipped record {i}", "abstract": "", "note": NOTE} for i in range(n)]
    rows.append({"title": "The one paper", "abstract": ABSTRACT, "note": ""})
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=1))
    elif path.suffix == ".csv":
        path.write_text(
            "title,abstract,note\n" + "".join(f'"{r["title"]}","{r["abstract"]}","{r["note"]}"\n' for r in rows)
        )
    else:  # NOTE: the notes go between entries, kept as text but not decoded (decoding LaTeX is what is slow)
        bib = "@misc{{k{}, title = {{{title}}}, abstract = {{{abstract}}}}}\n{notes}\n"
        path.write_text("".join(bib.format(i, notes=r["note"] * 20, **r) for i, r in enumerate(rows)))
    return path


@pytest.mark.parametrize(("suffix", "n"), [(".json", 20_000), (".csv", 20_000), (".bib", 300)])
def test_memory_stays_near_one_record_whatever_the_file_size(tmp_path: Path, suffix: str, n: int) -> None:
    """Parsed whole, these files (1 to 5 MiB) took 5 to 25 MiB at the peak; read a record at a time, under 0.5 MiB:
    a few chunks of text and one record."""
    path = many_records(tmp_path / f"many{suffix}", n)
    tracemalloc.start()
    try:
        result = read_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(result.papers), dict(result.skipped)) == (1, {"missing abstract": n})
    assert path.stat().st_size > 2**20 > peak, (path.stat().st_size, peak)
