"""Fuzzing the command line and the file readers: whatever the text, bytes, numbers and settings, no traceback,
ever."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.cli import main
from rag.corpus import CorpusError, read_bytes
from tests.test_corpus import make_pdf

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
