"""The glossary: the field's terms for a newcomer's words, added to what search matches by words."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from rag.api import get_retriever
from rag.config import Settings
from rag.errors import RagError
from rag.glossary import Entry, Glossary, glossary
from rag.lexical import terms

SMALL = Glossary.of(
    Entry(term=term, everyday=everyday, also=also)
    for term, everyday, also in [
        ("GPU", ["graphics card", "gaming card"], ["graphics processing unit"]),
        ("quantization", ["storing numbers more coarsely"], []),
        ("recommendation system", ["you might also like"], []),
        ("FPGA", ["reprogrammable chip"], []),
    ]
)


def read(text: str) -> list[tuple[str, str]]:
    return [(text[start:end], terms[0]) for start, end, terms in SMALL.matches(text)]


def test_a_phrasing_is_found_without_determiners_and_other_words_count() -> None:
    assert read("Can I train it on two graphics cards?") == [("graphics cards", "GPU")]
    assert read("storing the numbers more coarsely") == [("storing the numbers more coarsely", "quantization")]
    assert read("storing numbers a little more coarsely") == []  # words between that are not determiners
    assert read("a card for graphics") == []
    assert read("Which papers would you like me to read?") == []
    assert read("a shop's 'you might also like' box") == [("you might also like", "recommendation system")]


def test_a_question_is_read_with_the_terms_in_place_of_their_phrasings() -> None:
    assert SMALL.rewrite("custom reprogrammable chip logic on two Graphics Cards") == "custom FPGA logic on two GPU"
    # phrasings made of words the papers use themselves are left as written
    common = {"reprog", "chip"}.__contains__
    assert SMALL.rewrite("a reprogrammable chip on a graphics card", common) == "a reprogrammable chip on a GPU"


def test_the_bundled_glossary_is_well_formed_and_general() -> None:
    lines = (resources.files("rag") / "data" / "glossary.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert len(entries) >= 300 and len({e["term"] for e in entries}) == len(entries)
    for entry in entries:
        # NOTE: short lower-case phrasings, a handful per term: the second helper's brief allowed six words
        assert entry["term"].strip() and 1 <= len(entry["everyday"]) <= 15, entry
        assert all(p == p.lower() and 1 <= len(p.split()) <= 6 for p in entry["everyday"]), entry
    bundled = glossary()
    assert bundled.rewrite("it runs on a single graphics card") == "it runs on a single GPU"
    assert "quantization" in bundled.rewrite("storing the weights with fewer bits")
    assert (
        bundled.rewrite("an AI that understands both pictures and text")
        == "an AI that understands both pictures and text"
    )
    # the field's own wording is left as it is
    assert bundled.matches("We propose pipeline parallelism with a new schedule for GPipe.") == []


def test_a_paper_is_indexed_with_the_everyday_words_for_the_terms_it_uses() -> None:
    gpu = terms("graphics card gaming card")
    text = "Four GPUs, one more graphics processing unit, and quantization of the weights."
    assert SMALL.everyday_terms(terms(text)) == list(dict.fromkeys(gpu)) + terms("storing numbers more coarsely")
    assert SMALL.everyday_terms(terms("A survey of protein folding.")) == []


def test_a_text_is_read_in_everyday_words_with_each_term_in_its_first_phrasing() -> None:
    assert SMALL.in_everyday_words("Quantization on four GPUs and a graphics processing unit.") == (
        "storing numbers more coarsely on four graphics card and a graphics card."
    )
    assert SMALL.in_everyday_words("A survey of protein folding.") == "A survey of protein folding."


def test_a_papers_vector_reads_its_abstract_in_everyday_words_too(bundled: Settings) -> None:
    """The encoder places "specialist branches" far from "mixture of experts"; the paper's own vector is the mean of
    its abstract read as written and in the glossary's everyday words (rag.index.read_both_ways)."""
    from rag.embed import embed_texts
    from rag.index import whole_text

    question = "Can one assistant handle speech, audio, video, and images using specialist branches cheaply?"
    retriever = get_retriever(bundled)
    papers, stored = retriever.store.all_papers(with_embeddings=True)
    assert stored is not None
    uni_moe = next(i for i, p in enumerate(papers) if p.title.startswith("Uni-MoE"))
    as_written = embed_texts(retriever.embedder, [whole_text(p) for p in papers])
    vector = retriever.query_vector(question)

    def rank(vectors: np.ndarray) -> int:
        cosines = vectors @ vector
        return int((cosines > cosines[uni_moe]).sum()) + 1

    assert rank(stored) <= 5 < 20 < rank(as_written)


def test_search_matches_a_newcomers_words_against_the_terms_a_paper_uses(bundled: Settings) -> None:
    retriever = get_retriever(bundled)
    scores = retriever.lexical.scores("rewire")  # in no abstract; in the glossary's "chip you can rewire" (FPGA)
    found = retriever.papers.fetch(pid for pid, score in zip(retriever._ids, scores, strict=True) if score > 0)
    assert len(found) >= 3
    assert all("FPGA" in f"{p.title} {p.abstract}" for p in found.values())
    assert not any("rewir" in terms(f"{p.title} {p.abstract}") for p in found.values())


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
    monkeypatch.setattr(retriever, "_glossary", Glossary({}))
    assert with_glossary <= 3 < rank()


def test_an_answer_says_which_everyday_words_search_read_as_terms(bundled: Settings) -> None:
    from rag.api import ask
    from rag.export import answer_markdown

    answer = ask("Is there a library that splits training across several graphics cards automatically?", bundled)
    assert answer.read_as == {"graphics cards": "GPU"}
    assert "Searched with “graphics cards” also read as GPU" in answer_markdown(answer).replace("\\", "")
    assert ask("Which GPU does WebLLM use for acceleration in the browser?", bundled).read_as == {}


def test_a_phrase_the_glossary_misreads_takes_none_of_the_questions_words_away(
    bundled_home: Path, tmp_path: Path
) -> None:
    import shutil

    from rag.retrieve import Retriever

    mine = tmp_path / "misread.jsonl"
    mine.write_text('{"term": "protein structure prediction", "everyday": ["pipeline bubbles"]}\n')
    home = tmp_path / "home"
    shutil.copytree(bundled_home, home)
    retriever = Retriever(Settings(home=home, glossary=mine))
    question = "What removes pipeline bubbles?"
    assert retriever.glossed(question) == {"pipeline bubbles": "protein structure prediction"}
    assert retriever.read_as(question) == "What removes protein structure prediction?"
    # NOTE: search reads the question as written too, so the paper on pipeline bubbles is still found first
    assert retriever.search(question)[0].title.startswith("Zero Bubble Pipeline Parallelism")


def test_a_glossary_of_ones_own_field_is_added_and_a_bad_one_is_named(tmp_path: Path) -> None:
    mine = tmp_path / "biology.jsonl"
    mine.write_text(
        '{"term": "CRISPR", "everyday": ["gene scissors"]}\n\n{"term": "GPU", "everyday": ["number cruncher"]}\n'
    )
    added = glossary(mine)
    assert added.rewrite("Can gene scissors run on a number cruncher or a graphics card?") == (
        "Can CRISPR run on a GPU or a GPU?"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"term": "CRISPR", "everyday": ["gene scissors"]}\n{"term": "GPU"}\n')
    with pytest.raises(RagError, match=r"bad.jsonl, line 2: Field required \(everyday\)"):
        glossary(bad)
    with pytest.raises(RagError, match="cannot be read"):
        glossary(tmp_path / "missing.jsonl")


def test_a_bad_glossary_setting_is_one_line_and_a_non_zero_exit(tmp_path: Path, bundled: Settings) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    run = subprocess.run(
        [sys.executable, "-m", "rag", "search", "graphics cards"],
        env={**os.environ, "RAG_GLOSSARY": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "bad.jsonl, line 1" in run.stderr


def test_search_says_how_it_read_the_query(bundled: Settings) -> None:
    import subprocess
    import sys

    def search(*args: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "rag", "search", *args, "--k", "2"], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    found = json.loads(search("a [red] helper for several graphics cards", "--json"))
    assert found["read_as"] == {"graphics cards": "GPU"} and len(found["results"]) == 2
    shown = search("a [red] helper for several graphics cards")
    assert "a [red] helper" in shown and "Searched with “graphics cards” also read as GPU." in shown


def test_the_glossary_names_the_fields_noun_phrases() -> None:
    """Review themes may be named by them: each term, and its other forms that are an acronym or several words, not a
    lone lower-case word, which is often an adjective ("multimodal" named a theme "Multimodal")."""
    from rag.glossary import Entry, Glossary

    entries = [
        Entry(term="mixture of experts", also=["MoE", "sparse MoE", "experts"], everyday=["many small expert nets"]),
        Entry(term="multimodal learning", also=["multimodal"], everyday=["pictures and text together"]),
    ]
    assert Glossary.of(entries).phrases == {"mixture of experts", "moe", "sparse moe", "multimodal learning"}
