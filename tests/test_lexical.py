"""Lexical matching: a researcher's wording finds a paper whatever the word forms and acronyms."""

from __future__ import annotations

import numpy as np
import pytest

from rag.lexical import LexicalIndex, fold_acronyms, indexed_terms, mine_acronyms, terms
from rag.models import Paper
from rag.text import content_words, paper_words

PAPERS = [
    Paper(
        paper_id="bench",
        title="A benchmark suite for measuring energy",
        abstract="We benchmark the energy consumption of inference servers and publish the measurements.",
    ),
    Paper(
        paper_id="mllm",
        title="Fewer visual tokens",
        abstract="Multimodal Large Language Models (MLLMs) spend most of their compute on visual tokens; "
        "we prune them.",
    ),
    Paper(
        paper_id="other",
        title="Pipeline schedules",
        abstract="A pipeline-parallel schedule that removes bubbles when training Large Language Models (LLMs).",
    ),
]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("benchmarks", "benchmarking"),
        ("measuring energy", "measurements of energy"),
        ("pruning", "prunes"),
    ],
)
def test_terms_give_inflections_one_form(a: str, b: str) -> None:
    assert terms(a) == terms(b)


def test_terms_keep_a_hyphenated_word_and_its_parts() -> None:
    assert terms("pipeline-parallel training") == ["pipeli-parall", "pipeli", "parall", "train"]


def test_a_paper_that_names_a_version_names_its_family_and_a_question_does_not() -> None:
    # NOTE: a researcher asks which papers use Qwen; the abstracts write "Qwen2-VL" and "Qwen1.5-1.8B"
    paper = Paper(paper_id="q", title="A tiny MLLM", abstract="We compare with Qwen2-VL and Qwen1.5-1.8B on FP8.")
    assert "qwen" in indexed_terms(paper) and "qwen" in paper_words(paper.abstract)
    assert "fp" not in indexed_terms(paper)  # NOTE: two letters are no name
    assert "float" not in terms("float16") and "float" not in content_words("float16")  # one version names no other
    assert LexicalIndex([paper, *PAPERS]).scores("Which papers use Qwen?").argmax() == 0


@pytest.mark.parametrize("query", ["What accuracy does MobileVLM reach?", "mobilevlm accuracy"])
def test_a_name_in_mixed_case_is_not_its_stem(query: str) -> None:
    # NOTE: six letters of "MobileVLM" are "mobile", a word of every paper on phones
    names = Paper(paper_id="names", title="A small MLLM", abstract="It matches MobileVLM v2 on accuracy.")
    phones = Paper(paper_id="phones", title="LLMs on mobile phones", abstract="Mobile accuracy of mobile LLMs.")
    index = LexicalIndex([phones, names, *PAPERS])
    assert "mobilevlm" in indexed_terms(names) and "mobilevlm" in index.tokens(query)
    assert index.scores(query).argmax() == 1
    assert index.scores("mobile phones").argmax() == 0 and index.scores("mobile phones")[1] > 0  # still "mobile" too
    assert "mobilevlm" in content_words(names.abstract) and "mobile" not in content_words(names.abstract)


def test_acronym_and_long_forms_fold_into_one_term() -> None:
    acronyms = mine_acronyms(f"{p.title}. {p.abstract}" for p in PAPERS)
    forms = ["MLLMs", "multimodal LLMs", "multimodal large language models"]
    folded = {tuple(fold_acronyms(terms(form), acronyms)) for form in forms}
    assert len(folded) == 1


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("papers that benchmarked energy use", "bench"),
        ("token pruning in multimodal LLMs", "mllm"),
        ("pipeline parallelism", "other"),
    ],
)
def test_bm25_finds_the_paper_in_the_researchers_wording(query: str, best: str) -> None:
    index = LexicalIndex(PAPERS)
    scores = index.scores(query)
    assert PAPERS[int(np.argmax(scores))].paper_id == best
    assert scores.max() > 0


def test_bm25_scores_nothing_for_unknown_words() -> None:
    assert not LexicalIndex(PAPERS).scores("quantum chromodynamics").any()


def test_the_stop_words_are_scikit_learns() -> None:
    """rag/data/stopwords.txt is scikit-learn's list (a file, so that a command need not import scikit-learn)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from rag.text import STOPWORDS, _english_stop_words

    assert _english_stop_words() == ENGLISH_STOP_WORDS
    assert ENGLISH_STOP_WORDS < STOPWORDS


def test_an_acronyms_long_form_does_not_depend_on_the_papers_order() -> None:
    texts = ["We study Pipeline Parallelism (PP) here.", "A Parallel Pipeline (PP) is built.", "Data Parallel (DP)."]
    assert mine_acronyms(texts) == mine_acronyms(reversed(texts))
    assert mine_acronyms(texts)["pp"] == ("parall", "pipeli")
    assert mine_acronyms([*texts, "Machine Learning Systems (MLSys) and Machine Learning (ML)."])["mlsy"] == (
        "machin", "learn", "system",
    )  # fmt: skip
