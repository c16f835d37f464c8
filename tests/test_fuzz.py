"""Fuzzing the command line and the file readers: whatever the text, bytes, numbers and settings, no traceback,
ever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.cli import main
from rag.corpus import CorpusError, read_bytes, read_stream, read_text
from tests.test_corpus import ABSTRACT, Trickle, make_pdf, outcome

PDF = make_pdf(compress=False)  # NOTE: damage then reaches the page's text, not only its zlib stream
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120)
NUMBER = st.one_of(st.integers(-10, 500).map(str), TEXT)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    command=st.sampled_from(["ask", "search", "compare", "review"]),
    text=TEXT,
    k=st.one_of(st.none(), NUMBER),
    as_json=st.booleans(),
    top_k=st.one_of(st.none(), NUMBER),
    engine=st.one_of(st.none(), st.sampled_from(["extractive", "llm", "", "gpt"]), TEXT),
    timeout=st.one_of(st.none(), NUMBER),
)
def test_no_input_or_setting_gives_a_traceback(
    bundled_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    text: str,
    k: str | None,
    as_json: bool,
    top_k: str | None,
    engine: str | None,
    timeout: str | None,
) -> None:
    monkeypatch.setenv("RAG_HOME", str(bundled_home))
    for name, value in (("RAG_TOP_K", top_k), ("RAG_ENGINE", engine), ("RAG_LLM_TIMEOUT", timeout)):
        if value is None or "\x00" in value:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    argv = [command, "--", text] if text.startswith("-") else [command, text]
    if k is not None and command in ("ask", "search"):
        argv[1:1] = ["--k", k]
    if as_json:
        argv.insert(1, "--json")
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: a usage line and one error line
        code = exit_.code
    out, err = capsys.readouterr()
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in out + err
    if code == 2:
        assert err.strip().splitlines()[-1].startswith(("error:", "rag ")), err


@pytest.mark.parametrize("command", ["ask", "eval"])
def test_a_batch_or_eval_file_nested_too_deeply_is_one_line(
    bundled_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    monkeypatch.setenv("RAG_HOME", str(bundled_home))
    path = tmp_path / "deep.jsonl"
    path.write_text('{"question": "What is GPipe?"}\n' + "{" + '"a":[' * 50_000 + "\n")
    code = main(["ask", "--batch", str(path)] if command == "ask" else ["eval", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"error: {path}:2: "), err


@st.composite
def damaged_pdfs(draw: st.DrawFn) -> bytes:
    """A real PDF with bytes overwritten and its end cut off: what a broken download or a hostile file looks like."""
    data = bytearray(PDF[: draw(st.integers(0, len(PDF)))])
    for _ in range(draw(st.integers(0, 8)) if data else 0):
        at = draw(st.integers(0, len(data) - 1))
        data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(damaged_pdfs(), st.binary(max_size=2000)))
def test_a_damaged_pdf_is_one_line_or_read(data: bytes) -> None:
    try:
        result = read_bytes(data, "fuzz.pdf", ".pdf")
    except CorpusError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.pdf: ")
    else:
        assert all(p.title and p.abstract for p in result.papers)
        assert len(result.papers) + result.skipped_total == 1  # its one paper, or why it was skipped


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (PDF[: len(PDF) // 3], "damaged or unsupported PDF"),
        (make_pdf(password="secret"), "PDF needs a password"),
    ],
)
def test_ingesting_a_damaged_or_locked_pdf_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(content)
    code = main(["ingest", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: {path}: {message}"), err


# --- the streaming readers against the whole-file parsers they replaced -------------------------

JSON_RECORD = st.one_of(
    st.fixed_dictionaries(
        {"title": st.sampled_from(["T one", "T two", ""]) | st.text(max_size=12)},
        optional={
            "abstract": st.sampled_from([ABSTRACT, "", "Short."]),
            "author": st.lists(st.fixed_dictionaries({"family": st.text(max_size=4)}), max_size=2),
            "issued": st.just({"date-parts": [[2024]]}),
            "note": st.text(max_size=40),
        },
    ),
    st.integers(),
    st.text(max_size=4),
    st.none(),
)
JSON_DAMAGE = '[]{}",:0123456789 \n\teE.-+tfnrulasINy\\'


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """JSON as corpus files hold it (arrays, wrappers, CSL items, pretty-printed or not), then perhaps damaged: cut
    short, or a character put in or replaced."""
    records = st.lists(JSON_RECORD, max_size=5)
    text = json.dumps(
        draw(st.one_of(records, st.fixed_dictionaries({"papers": records}))), indent=draw(st.none() | st.just(1))
    )
    at = draw(st.integers(0, len(text)))
    damage = draw(st.sampled_from(["none", "none", "cut", "put", "replace"]))
    char = draw(st.sampled_from(JSON_DAMAGE))
    if damage == "cut":
        return text[:at]
    return text if damage == "none" else text[:at] + char + text[at + (damage == "replace") :]


def json_loads_outcome(text: str) -> object:
    """What the whole-file reader gave: json.loads, then the same records read from canonical JSON."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"fuzz.json:{exc.lineno}: invalid JSON ({exc.msg}, column {exc.colno})"
    return outcome(lambda: read_text(json.dumps(data), "fuzz.json", ".json"))


@settings(max_examples=400, deadline=None)
@given(text=json_texts(), size=st.integers(1, 9))
def test_json_read_a_record_at_a_time_is_what_json_loads_gave(text: str, size: int) -> None:
    streamed = outcome(lambda: read_stream(Trickle(text, size), "fuzz.json", ".json"))
    assert streamed == outcome(lambda: read_text(text, "fuzz.json", ".json"))
    whole = json_loads_outcome(text)
    if isinstance(whole, str) and "invalid JSON" in whole and not (isinstance(streamed, str) and "JSON" in streamed):
        assert isinstance(streamed, str)  # NOTE: an error either way: a bad record can come before the bad syntax
    else:
        assert streamed == whole


MACRO = "@string{mac = {A macro abstract, long enough to stand in for one: " + "words " * 40 + "}}\n"
BIB_LINE = st.sampled_from(
    [
        "@article{k#,\n",
        "  title = {Title #},\n",
        "  abstract = {" + ABSTRACT + "},\n",
        "  abstract = mac,\n",
        "}\n",
        "@misc{k#, title = {One line #}, abstract = {" + ABSTRACT + "}}\n",
        "  @book{k#, title = {Indented #}, abstract = mac}\n",
        "see @misc{k#, title = {Mid line #}, abstract = mac} too\n",
        "@misc(k#, title = {Paren #}, abstract = {Short.})\n",
        "@ARTICLE{k#, title = {Upper}, abstract = mac}\n",
        "@article{dup, title = {Dup}, abstract = mac}\n",
        "@string{mac = {Redefined}}\n",
        "@comment{a note}\n",
        '@preamble{"p"}\n',
        "junk text\n",
        "  note = {mail me @home{x} or @ {here}},\n",
        "a line with @word{x} in it\n",
        "  @ {CLEF}\n",
        "x\r",
        "\r\n",
        "\n",
        "  title = {Open #\n",
        "{\n",
        '"\n',
        "@article{k#,",
    ]
)


def whole_bibtex_outcome(text: str) -> object:
    """What the whole-file reader gave: bibtexparser's parse_string over the whole text, its entries then read as
    records."""
    import bibtexparser
    from bibtexparser.middlewares import LatexDecodingMiddleware

    library = bibtexparser.parse_string(text, append_middleware=[LatexDecodingMiddleware()])
    if library.failed_blocks:
        block = library.failed_blocks[0]
        return f"fuzz.bib:{(block.start_line or 0) + 1}: malformed BibTeX entry ({type(block).__name__})"
    if not library.entries:
        return "fuzz.bib: no BibTeX entries found"
    entries = library.entries
    records = [{**{k.lower(): f.value for k, f in e.fields_dict.items()}, "id": e.key} for e in entries]
    got = outcome(lambda: read_text(json.dumps(records), "fuzz.bib", ".json"))
    if isinstance(got, str):
        return got
    papers, skipped = got
    for paper in papers:  # NOTE: located as the BibTeX reader locates an entry
        entry = entries[int(paper["locator"].split()[1]) - 1]
        paper["locator"] = f"entry {entry.key} (line {(entry.start_line or 0) + 1})"
    return papers, skipped


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(BIB_LINE, max_size=25))
def test_bibtex_read_an_entry_at_a_time_is_what_the_whole_file_parse_gave(lines: list[str]) -> None:
    """Any mix of entries, macros, comments, broken and unclosed blocks; @string is defined first, as BibTeX needs."""
    text = MACRO + "".join(line.replace("#", str(n)) for n, line in enumerate(lines))
    assert outcome(lambda: read_text(text, "fuzz.bib", ".bib")) == whole_bibtex_outcome(text)
