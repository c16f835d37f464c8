"""Fuzzing the command line: whatever the text, numbers and settings, no traceback, ever."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.cli import main

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
