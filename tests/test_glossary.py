"""The glossary: the field's terms for a newcomer's words, added to what search matches by words."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from rag import retrieve
from rag.api import get_retriever
from rag.config import Settings
from rag.glossary import Glossary, glossary

SMALL = Glossary.of(
    [
        ("GPU", ["graphics card", "gaming card"]),
        ("quantization", ["storing numbers more coarsely"]),
        ("recommendation system", ["you might also like"]),
        ("FPGA", ["reprogrammable chip"]),
    ]
)


def test_a_phrasing_of_several_words_is_found_by_its_content_words_in_a_row() -> None:
    assert SMALL.terms_for("Can I train it on two graphics cards?") == ["GPU"]
    assert SMALL.terms_for("storing the numbers more coarsely") == ["quantization"]  # stop words between are skipped
    assert SMALL.terms_for("storing model numbers more coarsely") == []  # content words not in a row
    assert SMALL.terms_for("storing its numbers more coarsely, on gaming cards") == ["quantization", "GPU"]
    assert SMALL.terms_for("a card for graphics") == []


def test_a_phrasing_of_one_content_word_is_found_only_as_written() -> None:
    assert SMALL.terms_for("Which papers would you like me to read?") == []
    assert SMALL.terms_for("a shop's 'you might also like' box") == ["recommendation system"]


def test_a_question_is_read_with_the_terms_in_place_of_their_phrasings() -> None:
    assert SMALL.rewrite("custom reprogrammable chip logic on two Graphics Cards") == "custom FPGA logic on two GPU"
    assert SMALL.terms_for("Which GPU is fastest, and how many graphics cards does it need?") == []  # has the term
    # phrasings made of words the papers use themselves are left as written
    common = {"reprog", "chip"}.__contains__
    assert SMALL.rewrite("a reprogrammable chip on a graphics card", common) == "a reprogrammable chip on a GPU"


def test_the_bundled_glossary_is_well_formed_and_general() -> None:
    lines = (resources.files("rag") / "data" / "glossary.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert len(entries) >= 300 and len({e["term"] for e in entries}) == len(entries)
    for entry in entries:
        assert entry["term"].strip() and 1 <= len(entry["everyday"]) <= 12, entry
        assert all(p == p.lower() and 1 <= len(p.split()) <= 5 for p in entry["everyday"]), entry
    bundled = glossary()
    assert "GPU" in bundled.terms_for("it runs on a single graphics card")
    assert "quantization" in bundled.terms_for("storing the weights with fewer bits")
    # the field's own wording gets nothing added
    assert bundled.terms_for("We propose pipeline parallelism with a new schedule for GPipe.") == []


def test_a_question_in_everyday_words_finds_its_paper_through_the_glossary(
    bundled: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = (
        "How can big text AIs handle very long inputs on small, low-power devices by both slimming the model down "
        "and building custom reprogrammable chip logic for it?"
    )
    retriever = get_retriever(bundled)
    accllm = next(pid for pid, title in retriever.papers.titles.items() if title.startswith("AccLLM"))

    def rank() -> int:
        return [pid for pid, _ in retriever.score(question).ranked()].index(accllm) + 1

    with_glossary = rank()
    monkeypatch.setattr(retrieve, "glossary", lambda: Glossary({}, {}))
    assert with_glossary <= 3 < rank()


def test_an_answer_says_which_everyday_words_search_read_as_terms(bundled: Settings) -> None:
    from rag.api import ask
    from rag.export import answer_markdown

    answer = ask("Is there a library that splits training across several graphics cards automatically?", bundled)
    assert answer.read_as == {"graphics cards": "GPU"}
    assert "Searched with “graphics cards” read as GPU" in answer_markdown(answer).replace("\\", "")
    assert ask("Which GPU does WebLLM use for acceleration in the browser?", bundled).read_as == {}
