"""Settings and prompt templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag import prompts
from rag.config import Settings


@pytest.mark.parametrize(
    ("change", "differs"),
    [
        ({}, False),
        ({"embed_model": "other-model"}, True),
        ({"chunk_tokens": 128}, True),
        ({"chunk_overlap": 8}, True),
        ({"embed_backend": "openai"}, True),
        ({"top_k": 9}, False),
        ({"engine": "llm"}, False),
    ],
)
def test_index_name_changes_with_embedding_settings(change: dict[str, object], differs: bool) -> None:
    base = Settings().index_name
    name = Settings(**change).index_name  # type: ignore[arg-type]
    assert (name != base) is differs
    assert 3 <= len(name) <= 512 and all(ch.isalnum() or ch in "._-" for ch in name)


def test_env_file_and_environment_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("RAG_TOP_K=7\nOPENAI_API_KEY=sk-test-secret-123456\n")
    monkeypatch.setenv("RAG_ENGINE", "llm")
    s = Settings()
    assert (s.top_k, s.engine, s.llm_configured) == (7, "llm", True)
    assert "sk-test-secret" not in repr(s) and "sk-test-secret" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("env", "value"),
    [("RAG_TOP_K", "0"), ("RAG_ENGINE", "gpt"), ("RAG_CHROMA_URL", "localhost:8000"), ("RAG_CHUNK_TOKENS", "x")],
)
def test_bad_settings_fail(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError):
        Settings()


def test_an_unknown_rag_key_in_env_is_refused_and_other_tools_keys_ignored(tmp_path: Path) -> None:
    from rag.config import get_settings

    (tmp_path / ".env").write_text("DATABASE_URL=postgres://x\nRAG_TOP_K=3\n")
    assert get_settings().top_k == 3
    (tmp_path / ".env").write_text("RAG_TOPK=3\n")
    with pytest.raises(ValueError, match="unknown setting RAG_TOPK"):
        get_settings()


def test_env_example_lists_every_setting() -> None:
    example = (Path(__file__).resolve().parent.parent / ".env.example").read_text()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = alias.choices if alias is not None else [f"RAG_{name.upper()}"]  # type: ignore[union-attr]
        assert any(str(n) in example for n in names), name
        assert field.description, name


@pytest.mark.parametrize(
    "name",
    ["answer_system", "answer_user", "compare_system", "compare_user", "review_system", "review_user",
     "review_json_system", "review_json_user"],
)  # fmt: skip
def test_prompt_files_load_and_render(name: str) -> None:
    prompt = prompts.load(name)
    values = {v: f"<{v}>" for v in prompt.variables if v not in prompts.FRAGMENTS}
    text = prompt.render(**values)
    assert all(f"<{v}>" in text for v in values)
    assert len(prompt.sha) == 12


def test_answer_prompt_carries_the_shared_fragments() -> None:
    text = prompts.load("answer_system").render()
    assert prompts.CANNOT_ANSWER in text and prompts.CITATION_FORMAT in text and prompts.SOURCES_ARE_DATA in text


@pytest.mark.parametrize(
    ("values", "problem"), [({}, "missing"), ({"question": "q", "sources": "s", "history": "", "x": "1"}, "unknown")]
)
def test_prompt_render_rejects_missing_and_unknown(values: dict[str, str], problem: str) -> None:
    with pytest.raises(prompts.PromptError, match=problem):
        prompts.load("answer_user").render(**values)
