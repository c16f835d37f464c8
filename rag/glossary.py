"""The field's terms for a newcomer's words: "graphics cards" is also "GPU", "storing the numbers more coarsely" is
also "quantization".

A question in everyday words shares few words with the abstracts it is about, and the encoder (MiniLM) places it
far from them. The glossary (rag/data/glossary.jsonl) lists the technical terms of machine learning, its systems and
hardware, each with the everyday phrasings a non-specialist writes instead; search adds the terms whose phrasings a
question uses (rag.retrieve). It was written blind by a helper session that saw only the abstracts of the 126 dev
papers (never the questions, the code or the held-out papers), and is meant for any collection of ML papers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from rag.lexical import bm25_tokens
from rag.text import STOPWORDS, stem


def words(text: str, *, content: bool = True) -> tuple[str, ...]:
    """Stemmed words in order, a hyphenated word split into its parts ('photo-and-text' → photo, and, text); with
    `content`, only content words."""
    # NOTE: bm25_tokens gives a hyphenated word, then its parts; only the parts are kept.
    return tuple(
        stem(token)
        for token in bm25_tokens(text)
        if "-" not in token and (not content or (token not in STOPWORDS and len(token) > 1))
    )


@dataclass(frozen=True)
class Glossary:
    """Everyday phrasings → the technical terms they stand for. A phrasing of two content words or more is found by
    its content words in a row ('storing its numbers more coarsely' has 'storing numbers more coarsely'); one with
    fewer only as written, stop words included ('you might also like', not any 'like')."""

    by_content: dict[tuple[str, ...], tuple[str, ...]]
    as_written: dict[tuple[str, ...], tuple[str, ...]]

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

    def terms_for(self, text: str) -> list[str]:
        """The technical terms whose everyday phrasings the text uses, in order, each once; none the text already
        uses itself."""
        found = words(text)
        own = set(found)
        out: dict[str, None] = {}
        for table, sequence in ((self.by_content, found), (self.as_written, words(text, content=False))):
            for terms in _runs(table, sequence):
                out.update((t, None) for t in terms if not set(words(t)) <= own)
        return list(out)

    def expand(self, query: str) -> str:
        """The query with the technical terms of its everyday phrasings appended, or the query as it is."""
        terms = self.terms_for(query)
        return f"{query} ({'; '.join(terms)})" if terms else query


def _runs(table: dict[tuple[str, ...], tuple[str, ...]], sequence: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The values of the table's keys found in the sequence, longest first at each position, without overlaps."""
    longest = max(map(len, table), default=0)
    i = 0
    while i < len(sequence):
        for size in range(min(longest, len(sequence) - i), 0, -1):
            if sequence[i : i + size] in table:
                yield table[sequence[i : i + size]]
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
