"""Citation parsing, renumbering and verification, including malformed model output."""

from __future__ import annotations

import pytest

from rag.citations import Source, normalise_markers, parse_markers, renumber, split_claims, support, verify
from rag.models import Paper


def _source(n: int, title: str, *sentences: str) -> Source:
    paper = Paper(paper_id=f"p{n}", title=title, abstract=" ".join(sentences))
    return Source(n=n, paper=paper, sentences=tuple(sentences))


SOURCES = [
    _source(
        1, "Zero Bubble Pipeline Parallelism", "Zero Bubble removes pipeline bubbles.", "It improves throughput by 23%."
    ),
    _source(2, "GPipe", "GPipe partitions a model across accelerators.", "It scales to 557 million parameters."),
    _source(3, "LookupViT", "LookupViT compresses visual tokens to a fixed number.", "It halves FLOPs."),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a [1].", [1]),
        ("a [1,2].", [1, 2]),
        ("a [1, 2; 3].", [1, 2, 3]),
        ("a [1-3].", [1, 2, 3]),
        ("a 【1】 b【2】", [1, 2]),
        ("a [Source 2] b [source: 3]", [2, 3]),
        ("a [^1]", [1]),
        ("a [1][2][1]", [1, 2, 1]),
        ("a 1] b (1) c", []),
        ("no markers", []),
    ],
)
def test_parse_markers(raw: str, expected: list[int]) -> None:
    assert parse_markers(raw) == expected


@pytest.mark.parametrize(
    ("raw", "valid", "text", "mapping"),
    [
        ("x [2]. y [1].", {1, 2}, "x [1]. y [2].", {2: 1, 1: 2}),
        ("x [7]. y [1].", {1, 2, 3}, "x. y [1].", {1: 1}),
        ("x [1,2]. z [2]", {1, 2}, "x [1][2]. z [2]", {1: 1, 2: 2}),
        ("x 【3】 and [3][3].", {3}, "x [1] and [1].", {3: 1}),
        ("x [9]", set(), "x", {}),
    ],
)
def test_renumber_orders_by_first_appearance_and_drops_invalid(
    raw: str, valid: set[int], text: str, mapping: dict[int, int]
) -> None:
    assert renumber(raw, valid) == (text, mapping)


def test_split_claims_moves_trailing_markers_into_their_sentence() -> None:
    claims = split_claims("Zero Bubble removes bubbles. [1] GPipe partitions models [2][1]. Uncited.")
    assert [(c.text, c.citations) for c in claims] == [
        ("Zero Bubble removes bubbles [1].", [1]),
        ("GPipe partitions models [2][1].", [2, 1]),
        ("Uncited.", []),
    ]


def test_a_claim_does_not_end_at_e_g() -> None:
    """A quoted sentence with "e.g." in it is one claim, cited, as the abstract's sentences are (rag.index)."""
    text = "It speeds up popular MLLMs, e.g. LLaVA, and InternVL2 models, by 2 times. [1] See Zero Bubble, i.e. ZB. [2]"
    assert [(c.text, c.citations) for c in split_claims(text)] == [
        ("It speeds up popular MLLMs, e.g. LLaVA, and InternVL2 models, by 2 times [1].", [1]),
        ("See Zero Bubble, i.e. ZB [2].", [2]),
    ]


@pytest.mark.parametrize(
    ("claim", "n", "supported"),
    [
        ("Zero Bubble improves throughput by 23%.", 1, True),
        ("Zero Bubble improves throughput by 45%.", 1, False),  # number not in the abstract
        ("GPipe partitions a model across accelerators.", 2, True),
        ("GPipe partitions a model across accelerators.", 3, False),  # wrong source
        ("Quantum annealing solves protein folding.", 1, False),
    ],
)
def test_support_checks_words_and_numbers(claim: str, n: int, supported: bool) -> None:
    score, quote = support(claim, SOURCES[n - 1])
    assert (score >= 0.5) is supported
    assert quote in SOURCES[n - 1].sentences


def test_verify_removes_dangling_markers_and_flags_unsupported_claims() -> None:
    raw = (
        "GPipe scales to 557 million parameters [2]. It halves FLOPs [7]. "
        "Zero Bubble needs 40 GPUs [1]. Zero Bubble removes pipeline bubbles [1]."
    )
    text, claims, citations = verify(raw, SOURCES)
    assert "[7]" not in text and text.startswith("GPipe scales to 557 million parameters [1].")
    assert [c.supported for c in claims] == [True, False, False, True]
    assert [(c.n, c.paper_id) for c in citations] == [(1, "p2"), (2, "p1")]
    assert citations[0].quote == "It scales to 557 million parameters."
    assert citations[1].supported is False  # one claim citing it was unsupported


def test_verify_of_repeated_text_keeps_markers_consistent() -> None:
    raw = "Zero Bubble removes pipeline bubbles [1]. " * 3
    _, claims, citations = verify(raw, SOURCES)
    assert len(citations) == 1 and all(c.citations == [1] for c in claims)


def test_normalise_leaves_plain_brackets_alone() -> None:
    assert normalise_markers("matrix [a, b] and list [x]") == "matrix [a, b] and list [x]"
