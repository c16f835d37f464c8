"""The field's terms for a newcomer's words: "graphics cards" is "GPU", "storing the numbers more coarsely" is
"quantization".

A question in everyday words shares few words with the abstracts it is about, and the encoder (MiniLM) places it
far from them. The glossary (rag/data/glossary.jsonl) lists 744 technical terms of machine learning, its systems and
hardware, each with the everyday phrasings a non-specialist writes instead; search reads a question with the terms
in place of their phrasings (rag.retrieve), and the lexical index holds each paper with the words of the everyday
phrasings of the terms it uses (rag.snapshot), so "a chip you can rewire" finds papers on FPGAs. A helper session
wrote it from the abstracts of the 126 dev papers alone (never the questions, the code or the held-out papers), told
to cover the field's general vocabulary, not these papers' names; the request's examples ("graphics cards", "storing
the numbers more coarsely", "knobs", ...) came from dev questions. Another helper, that saw only that glossary and
no abstract, added 295 terms of the field's general vocabulary and more phrasings for 49 of the first 449
(BENCHMARKS.md, tenth session). It is meant for any collection of ML papers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.errors import RagError
from rag.lexical import terms
from rag.text import STOPWORDS, stem

_T = TypeVar("_T")
_TOKEN = re.compile(r"[A-Za-z0-9]+")
# Words a phrasing is found without ('storing its numbers more coarsely' uses 'storing numbers more coarsely'). Other
# function words count: 'picture from text' is not 'pictures and text'.
_DETERMINERS = frozenset(
    {"a", "an", "the", "this", "that", "these", "those", "some", "any", "it", "its", "they", "their", "his", "her",
     "my", "your", "our"}
)  # fmt: skip


@dataclass(frozen=True)
class _Token:
    stem: str
    start: int
    end: int
    content: bool  # not a stop word


def _tokens(text: str) -> list[_Token]:
    """The text's words but determiners, in order, stemmed, with where they stand; a hyphenated word is its parts."""
    out = []
    for match in _TOKEN.finditer(text):
        word = match.group(0).lower()
        if word not in _DETERMINERS:
            out.append(_Token(stem(word), match.start(), match.end(), word not in STOPWORDS and len(word) > 1))
    return out


def words(text: str) -> tuple[str, ...]:
    """The stems of the text's words but determiners, in order ('photo-and-text' → photo, and, text)."""
    return tuple(t.stem for t in _tokens(text))


@dataclass(frozen=True)
class Glossary:
    """Everyday phrasings (their words but determiners, stemmed) → the technical terms they stand for; and each term,
    in each of its forms, → the words of its everyday phrasings, as the lexical index holds them (rag.lexical.terms)."""

    phrasings: dict[tuple[str, ...], tuple[str, ...]]
    everyday: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    plain: dict[tuple[str, ...], str] = field(default_factory=dict)  # each form of a term → its first phrasing
    # The field's noun phrases, lower-cased: each term, and its other forms that are an acronym or several words ("moe",
    # "vision tokens"); a single lower-case word among them is often an adjective ("multimodal" for "multimodal
    # learning")
    phrases: frozenset[str] = frozenset()

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> Glossary:
        """The glossary of these entries (lines of a glossary file)."""
        entries = list(entries)
        phrasings: dict[tuple[str, ...], dict[str, None]] = {}
        everyday: dict[tuple[str, ...], dict[str, None]] = {}
        plain: dict[tuple[str, ...], str] = {}
        for entry in entries:
            for phrasing in entry.everyday:
                if key := words(phrasing):
                    phrasings.setdefault(key, {})[entry.term] = None
            said = [t for phrasing in entry.everyday for t in terms(phrasing)]
            for form in (entry.term, *entry.also):
                if key := tuple(terms(form)):
                    everyday.setdefault(key, {}).update(dict.fromkeys(said))
                if entry.everyday and (key := words(form)):
                    plain.setdefault(key, entry.everyday[0])
        return cls(
            {key: tuple(found) for key, found in phrasings.items()},
            {key: tuple(t) for key, t in everyday.items()},
            plain,
            frozenset(
                form.lower()
                for entry in entries
                for form in (entry.term, *(a for a in entry.also if " " in a or a != a.lower()))
            ),
        )

    @cached_property
    def digest(self) -> str:
        """What a lexical index or a paper vector made with this glossary depends on (rag.snapshot, rag.index)."""
        tables = [sorted(self.everyday.items()), sorted(self.plain.items())]
        return hashlib.sha256(json.dumps(tables).encode()).hexdigest()[:16]

    @cached_property
    def _starts(self) -> dict[str, int]:
        """Each first word of a term's form, with the most words a form that starts with it has."""
        out: dict[str, int] = {}
        for key in self.everyday:
            out[key[0]] = max(out.get(key[0], 0), len(key))
        return out

    def everyday_terms(self, text_terms: Sequence[str]) -> list[str]:
        """The words of the everyday phrasings of every term the text uses (given as its rag.lexical.terms), once per
        term: what a newcomer would write for it, for the lexical index to match ("graphics cards" finds a paper on
        GPUs even where the question's phrasing is not the glossary's)."""
        found: dict[tuple[str, ...], None] = {}  # NOTE: a term's forms ("GPU", "graphics processing unit") say the same
        for i, first in enumerate(text_terms):
            for size in range(1, self._starts.get(first, 0) + 1):
                if said := self.everyday.get(tuple(text_terms[i : i + size])):
                    found[said] = None
        return [t for said in found for t in said]

    def with_everyday_terms(self, text_terms: Sequence[str]) -> list[str]:
        """The text's terms followed by the words of the everyday phrasings of the terms it uses: what the lexical
        index holds for a paper (rag.snapshot)."""
        return [*text_terms, *self.everyday_terms(text_terms)]

    def matches(self, text: str, common: Callable[[str], bool] | None = None) -> list[tuple[int, int, tuple[str, ...]]]:
        """Where the text uses an everyday phrasing (its start and end) and the terms it stands for, in order, the
        longest first at each word; none whose content words are all `common` (the papers' own wording)."""
        if common is None:
            return _runs(text, self.phrasings)
        return _runs(text, self.phrasings, lambda run: not all(common(t.stem) for t in run if t.content))

    def in_everyday_words(self, text: str) -> str:
        """The text with each term in the first everyday phrasing given for it: "two GPUs" → "two graphics card".

        NOTE: a paper's vector encodes its abstract read both ways (rag.index), as a question's encodes the question
        read both ways (rag.retrieve): the encoder places "a picture chatbot" far from "multimodal LLM"."""
        out, last = [], 0
        for start, end, phrasing in _runs(text, self.plain):
            out += [text[last:start], phrasing]
            last = end
        return "".join(out) + text[last:]

    def rewrite(self, query: str, common: Callable[[str], bool] | None = None) -> str:
        """The query with each everyday phrasing replaced by the term it stands for: 'two graphics cards' → 'two
        GPU'."""
        out, last = [], 0
        for start, end, found in self.matches(query, common):
            out += [query[last:start], found[0]]
            last = end
        return "".join(out) + query[last:]


def _runs(
    text: str, table: dict[tuple[str, ...], _T], keep: Callable[[list[_Token]], bool] | None = None
) -> list[tuple[int, int, _T]]:
    """Where the text uses a key of the table (its words but determiners, stemmed), with where it starts and ends
    and what the table gives for it, in order, the longest first at each word; only the runs `keep` keeps."""
    tokens = _tokens(text)
    longest = max(map(len, table), default=0)
    found = []
    i = 0
    while i < len(tokens):
        for size in range(min(longest, len(tokens) - i), 0, -1):
            run = tokens[i : i + size]
            value = table.get(tuple(t.stem for t in run))
            if value is not None and (keep is None or keep(run)):
                found.append((run[0].start, run[-1].end, value))
                i += size
                break
        else:
            i += 1
    return found


class Entry(BaseModel):
    """One line of a glossary file: a technical term and the everyday phrasings people write for it."""

    model_config = ConfigDict(extra="ignore")

    term: str = Field(min_length=1)
    also: list[str] = []  # its other forms: "graphics processing unit" for "GPU"
    everyday: list[str]


@lru_cache(maxsize=4)
def glossary(extra: Path | None = None) -> Glossary:
    """The bundled glossary, with the entries of the file `extra` (RAG_GLOSSARY) added; RagError names the line of a
    bad one."""
    bundled = (resources.files("rag") / "data" / "glossary.jsonl").read_text(encoding="utf-8")
    entries = _entries(bundled, "the bundled glossary")
    if extra is not None:
        try:
            text = extra.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RagError(f"glossary file {extra} cannot be read ({type(exc).__name__}); fix RAG_GLOSSARY") from None
        entries += _entries(text, f"glossary file {extra}")
    return Glossary.of(entries)


def _entries(text: str, where: str) -> list[Entry]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(Entry.model_validate_json(line))
            except ValidationError as exc:
                error = exc.errors()[0]
                field = ".".join(str(part) for part in error["loc"])
                raise RagError(
                    f"{where}, line {n}: {error['msg']}{f' ({field})' if field else ''}; each line is "
                    '{"term": "...", "everyday": ["...", ...]}'
                ) from None
    return out
