"""The field's terms for a newcomer's words: "graphics cards" is "GPU", "storing the numbers more coarsely" is
"quantization".

A question in everyday words shares few words with the abstracts it is about, and the encoder (MiniLM) places it
far from them. The glossary (rag/data/glossary.jsonl) lists 449 technical terms of machine learning, its systems and
hardware, each with the everyday phrasings a non-specialist writes instead; search reads a question with the terms
in place of their phrasings (rag.retrieve). A helper session wrote it from the abstracts of the 126 dev papers alone
(never the questions, the code or the held-out papers), told to cover the field's general vocabulary, not these
papers' names; the request's examples ("graphics cards", "storing the numbers more coarsely", "knobs", ...) came
from dev questions. It is meant for any collection of ML papers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from rag.text import STOPWORDS, stem

_TOKEN = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class _Token:
    stem: str
    start: int
    end: int
    content: bool


def _tokens(text: str) -> list[_Token]:
    """The text's words in order, stemmed, with where they stand; a hyphenated word is its parts."""
    out = []
    for match in _TOKEN.finditer(text):
        word = match.group(0).lower()
        out.append(_Token(stem(word), match.start(), match.end(), word not in STOPWORDS and len(word) > 1))
    return out


def words(text: str, *, content: bool = True) -> tuple[str, ...]:
    """Stemmed words in order ('photo-and-text' → photo, and, text); with `content`, only content words."""
    return tuple(t.stem for t in _tokens(text) if t.content or not content)


Table = dict[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Glossary:
    """Everyday phrasings → the technical terms they stand for. A phrasing of two content words or more is found by
    its content words in a row ('storing its numbers more coarsely' has 'storing numbers more coarsely'); one with
    fewer only as written, stop words included ('you might also like', not any 'like')."""

    by_content: Table
    as_written: Table

    @classmethod
    def of(cls, entries: Iterable[tuple[str, Iterable[str]]]) -> Glossary:
        """The glossary of (technical term, its everyday phrasings) pairs."""
        by_content: dict[tuple[str, ...], dict[str, None]] = {}
        as_written: dict[tuple[str, ...], dict[str, None]] = {}
        for term, phrasings in entries:
            for phrasing in phrasings:
                key = words(phrasing)
                table, key = (by_content, key) if len(key) >= 2 else (as_written, words(phrasing, content=False))
                if key:
                    table.setdefault(key, {})[term] = None
        return cls(*({k: tuple(v) for k, v in table.items()} for table in (by_content, as_written)))

    def matches(self, text: str, common: Callable[[str], bool] | None = None) -> list[tuple[int, int, tuple[str, ...]]]:
        """Where the text uses an everyday phrasing (its start and end) and the terms it stands for, in order;
        none whose content words are all `common` (words the papers use themselves need no translating)."""
        tokens = _tokens(text)
        found = []
        for table, sequence in ((self.by_content, [t for t in tokens if t.content]), (self.as_written, tokens)):
            found += [
                (sequence[i].start, sequence[j - 1].end, terms)
                for i, j, terms in _runs(table, sequence)
                if common is None or not all(common(t.stem) for t in sequence[i:j] if t.content)
            ]
        found.sort()
        kept: list[tuple[int, int, tuple[str, ...]]] = []
        for match in found:  # NOTE: the two tables can find overlapping phrasings; the first found stands
            if not kept or match[0] >= kept[-1][1]:
                kept.append(match)
        return kept

    def terms_for(self, text: str) -> list[str]:
        """The technical terms whose everyday phrasings the text uses, in order, each once; none the text already
        uses itself."""
        own = set(words(text))
        found = (term for _, _, terms in self.matches(text) for term in terms)
        return list(dict.fromkeys(t for t in found if not set(words(t)) <= own))

    def rewrite(self, query: str, common: Callable[[str], bool] | None = None) -> str:
        """The query with each everyday phrasing replaced by the term it stands for: 'two graphics cards' → 'two
        GPU'."""
        out, last = [], 0
        for start, end, terms in self.matches(query, common):
            out += [query[last:start], terms[0]]
            last = end
        return "".join(out) + query[last:]


def _runs(table: Table, sequence: Sequence[_Token]) -> Iterator[tuple[int, int, tuple[str, ...]]]:
    """The keys of the table found in the sequence's stems (start, end, value), longest first at each position,
    without overlaps."""
    stems = tuple(t.stem for t in sequence)
    longest = max(map(len, table), default=0)
    i = 0
    while i < len(stems):
        for size in range(min(longest, len(stems) - i), 0, -1):
            if stems[i : i + size] in table:
                yield i, i + size, table[stems[i : i + size]]
                i += size
                break
        else:
            i += 1


@lru_cache(maxsize=1)
def glossary() -> Glossary:
    """The bundled glossary."""
    text = (resources.files("rag") / "data" / "glossary.jsonl").read_text(encoding="utf-8")
    entries = (json.loads(line) for line in text.splitlines() if line.strip())
    return Glossary.of((entry["term"], entry["everyday"]) for entry in entries)
