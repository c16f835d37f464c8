"""Shared fixtures: an isolated RAG_HOME, no API key, no network, and small real indexes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# NOTE: one ONNX export of the embedding model per session, shared by every test and subprocess.
os.environ["RAG_CACHE_DIR"] = tempfile.mkdtemp(prefix="rag-test-cache-")

pytest_plugins = ["tests.servers"]

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "rag" / "data" / "trending-papers.txt"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point RAG_HOME at a temp dir, drop keys and endpoints so a stray live call fails fast."""
    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    kept = ("RAG_HOME", "RAG_CACHE_DIR")
    for name in list(os.environ):
        if (name.startswith("RAG_") and name not in kept) or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
    return home


@pytest.fixture(scope="session")
def bundled_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RAG_HOME with the bundled corpus indexed once for the whole session (read-only use)."""
    from rag.api import ingest_paths
    from rag.config import Settings

    home = tmp_path_factory.mktemp("bundled")
    ingest_paths([BUNDLED], Settings(home=home))
    return home


@pytest.fixture(scope="session")
def mixed_home(bundled_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled index with 48 papers of other fields added (eval/mixed_library.jsonl: history, ecology, medicine,
    law, …), as a researcher's library mixes fields (read-only use)."""
    import shutil

    from rag.api import ingest_paths
    from rag.config import Settings

    home = tmp_path_factory.mktemp("mixed") / "home"
    shutil.copytree(bundled_home, home)
    ingest_paths([ROOT / "eval" / "mixed_library.jsonl"], Settings(home=home))
    return home


@pytest.fixture()
def bundled(bundled_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Settings pointing at the shared bundled index."""
    from rag.config import Settings

    monkeypatch.setenv("RAG_HOME", str(bundled_home))
    yield Settings(home=bundled_home)
