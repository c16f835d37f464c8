"""Lexical matching: stemmed terms with acronyms folded, and the BM25 index over paper titles and abstracts."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.models import Paper
from rag.text import STOPWORDS, compounds, families, stem

# NOTE: tuned with the fusion weights on eval/dev.jsonl and eval/dev_topics.jsonl (scripts/tune_fusion.py);
# bm25s's default of 1.5 found fewer of a topic's papers.
BM25_K1 = 1.2


def bm25_tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens, hyphenated words also split into their parts."""
    words = re.findall(r"[a-z0-9]+(?:[-.][a-z0-9]+)*", text.lower())
    out: list[str] = []
    for word in words:
        out.append(word)
        if "-" in word:
            out += word.split("-")
    return out


def terms(text: str, whole: Container[str] = ()) -> list[str]:
    """Stemmed content words in order, but those in `whole`; a hyphenated word gives itself and its parts.

    'resource-constrained edge devices' gives ['resour-constr', 'resour', 'constr', 'edge', 'devic'].
    """
    return [
        word if word in whole else _term(word) for word in bm25_tokens(text) if word not in STOPWORDS and len(word) > 1
    ]


@lru_cache(maxsize=1 << 17)
def _term(word: str) -> str:
    return "-".join(stem(part) for part in word.split("-"))


_ACRONYM = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9]*)\s*\)")
_WORD = re.compile(r"[A-Za-z][\w-]*")
_LONG_FORM_WORDS = 8
_WINDOW = 300  # characters before "(" searched for them


def _words_before(text: str, end: int) -> list[str]:
    """The run of up to eight words that ends just before `end`, split at hyphens; [] when none does.

    NOTE: read backwards from each "(ACRONYM)"; one regular expression for the words and the acronym together
    tried every position of every abstract and was most of the time it took to build the index.
    """
    if end == 0 or not (text[end - 1].isspace() or text[end - 1] == "-"):
        return []
    run: list[str] = []
    for piece in reversed(text[max(0, end - _WINDOW) : end].split()):
        if len(run) == _LONG_FORM_WORDS or not _WORD.fullmatch(piece):
            break
        run.append(piece)
    return [word for piece in reversed(run) for word in piece.split("-") if word]


def definitions(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """The acronyms a text defines ('Multimodal Large Language Models (MLLMs)'), each with its long form in terms.

    A definition counts when the acronym's capitals are the initials of the words before it."""
    found = []
    for match in _ACRONYM.finditer(text):
        acronym = match.group(1)
        if sum(c.isupper() for c in acronym) < 2:
            continue
        words = _words_before(text, match.start())
        if not words:
            continue
        initials = [c.lower() for c in acronym if c.isupper() or c.isdigit()]
        content = [w for w in words if w[0].isupper() or w.lower() not in STOPWORDS]
        long_form = next(
            (ws[-len(initials):] for ws in (content, words)
             if len(ws) >= len(initials) and [w[0].lower() for w in ws[-len(initials):]] == initials),
            None,
        )  # fmt: skip
        spelled = tuple(terms(" ".join(long_form))) if long_form else ()
        key = stem(acronym.lower())
        # NOTE: a one-term long form ('out-of-distribution' → 'distri') would swallow an ordinary word.
        if len(spelled) >= 2 and key not in STOPWORDS:
            found.append((key, spelled))
    return found


def choose_acronyms(found: Iterable[tuple[str, tuple[str, ...]]]) -> dict[str, tuple[str, ...]]:
    """One long form per acronym: an acronym defined differently in different texts keeps its most frequent long
    form (of equally frequent ones, the longest, then the first in sort order: the choice does not depend on the
    texts' order)."""
    seen: dict[str, Counter[tuple[str, ...]]] = {}
    for key, form in found:
        seen.setdefault(key, Counter())[form] += 1
    return {key: min(forms, key=lambda form: (-forms[form], -len(form), form)) for key, forms in seen.items()}


def mine_acronyms(texts: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The acronyms the texts define, each with its long form in terms (definitions, choose_acronyms)."""
    return choose_acronyms(d for text in texts for d in definitions(text))


LongForms = dict[str, list[tuple[tuple[str, ...], str]]]  # first term → (long form, acronym), longest first


def long_forms(acronyms: dict[str, tuple[str, ...]]) -> LongForms:
    """The acronyms' long forms, looked up by their first term."""
    by_first: LongForms = {}
    for acronym, form in sorted(acronyms.items(), key=lambda kv: -len(kv[1])):
        by_first.setdefault(form[0], []).append((form, acronym))
    return by_first


def fold_acronyms(
    words: Sequence[str], acronyms: dict[str, tuple[str, ...]], by_first: LongForms | None = None
) -> list[str]:
    """Terms with every long form replaced by its acronym, after spelling acronyms out.

    'multimodal LLMs', 'MLLMs' and 'multimodal large language models' all become ['mllm'].
    """
    spelled = [w for word in words for w in acronyms.get(word, (word,))]
    by_first = long_forms(acronyms) if by_first is None else by_first
    out: list[str] = []
    i = 0
    while i < len(spelled):
        size, word = 1, spelled[i]
        for form, acronym in by_first.get(word, ()):
            if tuple(spelled[i : i + len(form)]) == form:
                size, word = len(form), acronym
                break
        out.append(word)
        i += size
    return out


def indexed_terms(paper: Paper) -> list[str]:
    """What the index reads of a paper, before acronyms are folded: its title's terms twice, then its abstract's, then
    the names it gives with a version, without it (rag.text.families), and those it writes in mixed case, whole
    (rag.text.compounds)."""
    text = f"{paper.title}. {paper.title}. {paper.abstract}"
    return [*terms(text), *sorted(families(text)), *sorted(compounds(text))]


class LexicalIndex:
    """BM25 (bm25s) over title and abstract, on stemmed terms with acronyms folded into one form."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self._build([indexed_terms(p) for p in papers], mine_acronyms(f"{p.title}. {p.abstract}" for p in papers))

    @classmethod
    def of_terms(cls, papers: Sequence[Sequence[str]], acronyms: dict[str, tuple[str, ...]]) -> LexicalIndex:
        """The index of papers given by their indexed_terms, with these acronyms folded (a snapshot's update)."""
        index = cls.__new__(cls)
        index._build(papers, acronyms)
        return index

    def _build(self, papers: Sequence[Sequence[str]], acronyms: dict[str, tuple[str, ...]]) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import

        self.acronyms = acronyms
        self._ready()
        corpus = [fold_acronyms(doc, self.acronyms, self._long_forms) for doc in papers]
        self.vocab: dict[str, int] = {}
        ids = [[self.vocab.setdefault(t, len(self.vocab)) for t in doc] for doc in corpus]
        self.model = bm25s.BM25(k1=BM25_K1)
        self.model.index(bm25s.tokenization.Tokenized(ids=ids, vocab=self.vocab), show_progress=False)
        self.size = len(papers)
        self.document_frequency = Counter(t for doc in corpus for t in set(doc))

    def _ready(self) -> None:
        self._long_forms = long_forms(self.acronyms)
        self._lock = threading.Lock()

    def save(self, folder: Path) -> None:
        """Write the index into an empty folder: bm25s's own files and our terms, as JSON and NumPy arrays."""
        self.model.save(str(folder), show_progress=False)
        terms = {"acronyms": self.acronyms, "size": self.size, "document_frequency": self.document_frequency}
        (folder / _TERMS).write_text(json.dumps(terms), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """An index written by `save`; its BM25 matrix is memory-mapped, not read."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        index = cls.__new__(cls)
        index.model = bm25s.BM25.load(str(folder), mmap=True, show_progress=False, verbosity=0)
        index.vocab = index.model.vocab_dict
        terms = json.loads((folder / _TERMS).read_text(encoding="utf-8"))
        index.acronyms = {key: tuple(form) for key, form in terms["acronyms"].items()}
        index.size = int(terms["size"])
        index.document_frequency = Counter(terms["document_frequency"])
        index._ready()
        return index

    def tokens(self, text: str) -> list[str]:
        """The text's terms as the index holds them: a word it holds whole (rag.text.compounds) is not stemmed, however
        the text writes it: 'mobilevlm' finds ML-Mamba, which compares itself with 'MobileVLM v2', not every paper on
        'mobile' devices."""
        whole = {w for w in bm25_tokens(text) if len(w) > 6 and w.isalpha() and w in self.vocab}  # stems are shorter
        return self.fold(terms(text, whole))

    def read(self, text: str) -> list[str]:
        """The text's terms (`tokens`) less a hyphenated one no paper writes, which its parts, also among them, stand
        for: "low-bit quantization" is read as "low", "bit" and "quantization", as the papers that write "low bit"
        or "4-bit" do."""
        return [t for t in self.tokens(text) if "-" not in t or t in self.vocab]

    def fold(self, words: Sequence[str]) -> list[str]:
        """Terms (rag.lexical.terms) as the index holds them, acronyms folded."""
        return fold_acronyms(words, self.acronyms, self._long_forms)

    def weight(self, term: str) -> float:
        """Inverse document frequency of a term; a term in no paper weighs like the rarest."""
        return float(np.log((self.size + 1) / (self.document_frequency.get(term, 0) + 0.5)))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every paper, in the order the index was built from."""
        words = [t for t in self.tokens(query) if t in self.vocab]
        if not words or not self.size:
            return np.zeros(self.size)
        with self._lock:  # NOTE: bm25s keeps per-query buffers; the UI may review from several threads
            return np.asarray(self.model.get_scores(words), dtype=np.float64)


_TERMS = "terms.json"
_lexical_cache: dict[str, LexicalIndex] = {}
_lexical_lock = threading.Lock()


def lexical_index(papers: Sequence[Paper]) -> LexicalIndex:
    """The lexical index of these papers, built once per distinct set of papers in the process."""
    key = hashlib.sha1("\n".join(f"{p.paper_id}:{p.content_hash}" for p in papers).encode()).hexdigest()
    with _lexical_lock:
        if key not in _lexical_cache:
            _lexical_cache.clear()  # NOTE: one index at a time; a re-ingest makes the old one stale
            _lexical_cache[key] = LexicalIndex(papers)
        return _lexical_cache[key]
