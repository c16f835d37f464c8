"""Small text helpers shared by retrieval, answering and verification: words, numbers, stems."""

from __future__ import annotations

import re

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

STOPWORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS) | {
    "paper", "papers", "propose", "proposed", "proposes", "approach", "approaches", "method", "methods",
    "based", "using", "use", "used", "new", "novel", "work", "study", "studies", "does", "did", "doing",
    "make", "makes", "way", "ways", "s", "t", "vs", "etc", "e.g", "i.e", "et", "al", "compared",
}  # fmt: skip

_NUMBER = re.compile(
    r"(?<![\w.])(\d+(?:[.,]\d+)*)\s*(%|x\b|×|times\b|fold\b|k\b|m\b|b\b|gb\b|ms\b|tb\b)?", re.IGNORECASE
)
_WORD = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*|\d+(?:\.\d+)?")


def stem(word: str) -> str:
    """A light suffix stripper: enough to match 'schedules' with 'scheduling'."""
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Stemmed words of the text that carry meaning (no stop words, no one-letter tokens)."""
    return {stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def numbers(text: str) -> set[str]:
    """Numbers in the text, normalised ('1,000' → '1000', '2.0' → '2')."""
    out = set()
    for match in _NUMBER.finditer(text):
        value = match.group(1).replace(",", "")
        try:
            out.add(f"{float(value):g}")
        except ValueError:
            continue
    return out


_QUANTITY = re.compile(
    r"\b(how (much|many|fast|large|big|long|small|often)|what (speed-?up|throughput|accuracy|latency|"
    r"percentage|fraction|factor|improvement|reduction|gain|size|number)|by what (factor|margin)|"
    r"speed-?up|how large)\b",
    re.IGNORECASE,
)


def asks_for_quantity(question: str) -> bool:
    """Whether the question asks for a figure (a speed-up, a count, a percentage)."""
    return bool(_QUANTITY.search(question))


def has_figure(text: str) -> bool:
    """Whether a sentence states a figure beyond years and list markers."""
    for match in _NUMBER.finditer(text):
        value, unit = match.group(1), match.group(2)
        if unit or "." in value or (value.isdigit() and not (1900 <= int(value) <= 2100) and int(value) > 1):
            return True
    return False
