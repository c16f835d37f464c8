"""Comparison: resolve named approaches to papers and fill a cited paper-by-aspect matrix, offline or with an LLM."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import numpy as np
from pydantic import BaseModel

from rag import grounding, prompts
from rag.citations import SUPPORT_OVERLAP, Similarity, Source, support
from rag.config import Settings
from rag.embed import embed_texts
from rag.index import roles_of, sentences_of, split_sentences
from rag.llm import LLM, LLMError
from rag.models import Cell, Citation, Comparison, Paper, Row
from rag.retrieve import Retriever
from rag.roles import ASPECT_ROLE, COLUMNS, ROLES, cell_features
from rag.store import Chunk
from rag.text import (
    LIMITATION_CUES,
    STOPWORDS,
    announces,
    content_words,
    continues_list,
    has_figure,
    leans_on_previous,
    paper_words,
    points_elsewhere,
    stem,
    system_names,
    word_key,
)
from rag.themes import vocabulary_of
from rag.tuned import CELLS, STATED_AT

log = logging.getLogger(__name__)

NOT_STATED = "not stated in the abstract"
PROBLEM = "problem addressed"
APPROACH = "approach"
RESULTS = "evaluation and reported results"
# A default column's cell: its likeliest sentence, then the runners-up (RUNNER_UP), while the cell stays within
# CELL_WORDS. Chosen on the dev comparison requests from 45, 60 and 75 words (eval/compare_dev.jsonl and
# eval/compare.jsonl): at 60, facts in the right cell 0.66 → 0.74 and 0.89 → 0.93, median cell 28 → 37 words (issue
# 15 asks for 12 to 45). Letting each sentence join only its likeliest column gave 0.76 and 0.82.
CELL_WORDS = 60
# The runners-up must be at least this share as likely as the cell's best sentence. Chosen on the same dev requests
# (2026-11-30, seventh session) from 0.5, 0.4, 0.35, 0.3 and 0.25 at 45 to 75 words: at 0.4, facts in the right cell
# 0.743 → 0.779 (eval/compare.jsonl 0.929, unchanged), median cell 37 → 40 and 42.5 words; 0.35 gave 0.785 at 40.5 and
# 43, 0.3 gave 0.789 at 43 and 44.5, too near the 45. Re-chosen (thirty-third session) when the dev medians had
# crept to 44 and 45 words (eval/compare_dev.jsonl, compare.jsonl, compare_phrasing_dev.jsonl,
# compare_families_dev.jsonl), by LEFT_OVER's rule below (the most facts in the right row with no dev median over 43)
# over 0.4 to 0.6 with CELL_WORDS 55 to 60: at 0.55, facts in the right row 0.891 → 0.897 and 1.0, in the right cell
# 0.798 → 0.801 and 0.929 → 0.857 (one fact of 14), medians 44, 44, 44 and 45 → 41, 41, 41.5 and 43 words. Cutting
# CELL_WORDS to 55 at 0.4 instead gave row 0.873, medians 40 to 42.
RUNNER_UP = 0.55
# A sentence no column shows joins the column it is likeliest to inform when it is at least this share as likely as
# that column's best (choose_sentences). Chosen on the dev requests out of fold (scripts/fit_cells.py, 2026-11-30,
# ninth session): the most facts in the right row with a median cell of 43 words at most, two under the 45
# (held-out medians have run up to two words over dev's). Without it: row 0.770, cell 0.676, 39 words; at 0.3: 0.802,
# 0.698, 43 words; at 0.25: 0.811, 0.704, 43 words; at 0.2: 0.824, 0.711, 44 words.
LEFT_OVER = 0.25
# A sentence that needs the one before it ("The key idea behind this improvement is …") brings it into its cell while
# the cell stays within this many words (half as many again as CELL_WORDS; read off the dev cells, not tuned). On the
# dev requests 19 cells gained the sentence, facts in the right cell 0.785 → 0.789, in the right row 0.879 → 0.885.
CONTEXT_WORDS = 90
# The synthesis names as common ground only terms that at most about one paper in seven of the library uses (idf ≥
# SHARED_IDF). Read off the dev syntheses (eval/compare_dev.jsonl, compare.jsonl, compare_phrasing_dev.jsonl): "both
# concern" MLLMs, LLM, machine learning, AI or GPUs (idf 1.07 to 1.95 on the bundled papers) said nothing of what the
# papers share; the next terms up, LLM inference (2.36) and instruction tuning (2.56), do. It was 1.0.
SHARED_IDF = 2.0
# A default column is stated, whatever its cell model says, when a sentence of the abstract likely plays its role
# (rag.roles): "Empirical results show that models trained with DeMo match or exceed …" is a result at P 0.94, and
# DeMo's results column read "not stated in the abstract". Likelier than not, set before measuring; 0.7 gave the same
# dev figures (BENCHMARKS.md). "Speaks of cost" is no role: Eagle's abstract and surveys speak of efficiency without
# claiming any, so the cost column is stated by STATED_AT alone.
ROLE_STATED = 0.5
RESOLVED = 0.5  # a name matching no paper this well is reported as unresolved
SURELY = 0.9  # a name matching a paper this well (its system name, a run of its title) names it, whatever follows
# A paper found by what a name describes counts as no surer than a name found in its title (0.95) or as its system
# name (1.0): "GPipe vs Zero Bubble for reducing bubbles" reads the name "Zero Bubble", not the description "Zero
# Bubble for reducing" (0.97); a weaker name match, such as a word of another abstract (0.7), still loses to it.
DESCRIBED_AT_MOST = 0.9
AMBIGUOUS_MARGIN = 0.05
MENTIONED = 0.7  # how surely a name an abstract mentions denotes that paper
SPELLING = 0.85  # a name this similar to a paper's system name (difflib's ratio) is that name misspelt
COMMON_IN = 2
TOPIC_FALLBACK_K = 4
WRITERS_SHOWN = 3  # the papers a name that is no paper's is shown with: the most relevant of those that write it
FAMILY_AT = 0.5  # a paper that writes such a name stands for it when the ranker finds it more likely than not about it
FAMILY_ROWS = 3  # the most papers compared for one such name (the likeliest), when at least two stand for it

DEFAULT_ASPECTS = (
    "problem addressed",
    "approach",
    "evaluation and reported results",
    "efficiency/cost claims",
    "limitations",
)


class _CellOut(BaseModel):
    text: str
    quote: str = ""


class _RowOut(BaseModel):
    """The schema the model's JSON must follow."""

    cells: dict[str, _CellOut]


# --- name resolution ----------------------------------------------------------------------------

_GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "θ": "theta", "λ": "lambda",
          "μ": "mu", "π": "pi", "σ": "sigma", "τ": "tau", "φ": "phi", "ω": "omega"}  # fmt: skip
_LEAD = re.compile(
    r"^\s*(?:please\s+)?(?:compare\s+and\s+contrast|compare|contrast|comparison\s+of|"
    r"(?:what(?:'?s|\s+(?:are|is))\s+the\s+)?differences?\s+between(?:\s+how)?|how\s+(?:do|does|did)|"
    r"what\s+distinguishes|"
    r"which(?:\s+one)?\s+of|between|is|are|does|do|should\s+i\s+use)\b"
    r"(?:\s*(?:(?:the\s+(?:following\b\s*)?|these\b\s*)(?:papers?|approaches|methods|systems|models)?|"
    r"(?:papers?|approaches|methods|systems|models))\s*(?:of|between|:))?\s*",
    re.IGNORECASE,
)
_JOINERS = re.compile(
    r"\s*/\s*|\s+(?:and|or|vs\.?|versus|with(?!\s+respect)|against|to|&|differs?\s+from|(?:[\w-]+\s+){1,3}?than)\s+",
    re.IGNORECASE,
)
# NOTE: "vs" only ever separates names; "and", "with" and "to" may be words of a title ("… via Pruning and Knowledge
# Distillation", "… with Offloading"), so a request is cut at them only within what lies between two "vs"
_VERSUS = re.compile(r"\s+(?:vs\.?|versus|or|against)\s+", re.IGNORECASE)
# NOTE: where a purpose clause may begin ("… as ways to …", "… for training …", "…: how does each …"); a request is
# cut there only when what comes before it names papers and the whole does not.
_PURPOSE = re.compile(
    r"\s*[:?—–]|\s+--?\s+|\s+(?:as|for|in|on|regarding|concerning|about|with\s+respect\s+to|when|to|at|under|"
    r"across|by|from|differ(?!s?\s+from)|compare|stack|perform|handle|and\s+(?:how|what|which|why)|which|that|if|"
    r"whether|because|since|given|while|whereas)\b",
    re.IGNORECASE,
)
# NOTE: where a clause begins, not a qualifier of the name before it ("… differ in …", "…: how …", "… that …")
_CLAUSE = re.compile(
    r"\s*[:?—–]|\s+--?\s+|\s+(?:differ|compare|stack|perform|handle|and\s+(?:how|what|which|why)|which|that|if|whether|"
    r"because|since|given|while|whereas|when)\b",
    re.IGNORECASE,
)
_FILLER = re.compile(
    r"^(?:the|a|an|that|this|those|these)\s+|^(?:paper|work|approach|method|system|model|one)\s+(?:on|about|that|which|proposing|"
    r"introducing|using)\s+|\s+(?:paper|approach|method|system|model|work)$",
    re.IGNORECASE,
)
_COMPOUND = re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b")
_DANGLING = re.compile(r"(?:\s+(?:on|in|for|with|of|at|by|to|from|as|via|the|a|an|and|or))+$", re.IGNORECASE)
_NAMING_NOUNS = frozenset(stem(w) for w in ("paper", "work", "approach", "method", "system", "model", "study", "one"))
_TWO_WORD_NAME = re.compile(
    r"(?<![.!?]\s)(?<!^)\b[A-Z][\w.-]*[A-Za-z0-9]\s+(?:[A-Z][\w.-]*[A-Za-z0-9]|\d+(?:\.\d+)*)\b"
)
_CASED_NAME = re.compile(r"[A-Za-z]*(?:[a-z][A-Z]|[A-Z]{2}[a-z])[A-Za-z]*")
_PARENTHESIS = re.compile(r"\s*\([^()]*\)")
_ASIDE = re.compile(
    r"^(?:and\s+|but\s+|or\s+|so\s+)?(?:especially|particularly|notably|mainly|including|in\s+particular|what(?:'?s)?|how|why|which|"
    r"who|does|do|did|is|are|was|were|can|could|would|should|will|isn'?t|aren'?t|doesn'?t|don'?t|both|they|we|you)\b",
    re.I,
)


@lru_cache(maxsize=8192)
def norm_words(text: str) -> tuple[str, ...]:
    """Lower-case ASCII word tokens, Greek letters spelled out (gamma-MoD for the Greek letter).

    NOTE: cached: resolving a request reads each name it tries against every paper's keys."""
    text = "".join(_GREEK.get(ch, ch) for ch in text.lower())
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return tuple(re.findall(r"[a-z0-9]+", text))


@lru_cache(maxsize=8192)
def compact(text: str) -> str:
    """A name with case, punctuation and spacing removed: 'DeepSpeed-Ulysses' → 'deepspeedulysses'."""
    return "".join(norm_words(text))


def system_name(title: str) -> str | None:
    """The system name a title leads with ('GPipe: Efficient ...' → 'GPipe'), if it has one."""
    head, sep, _ = title.partition(":")
    return head.strip() if sep and 0 < len(head.split()) <= 4 else None


def no_match(name: str) -> str:
    return f"{name!r} matches no indexed paper"


AMBIGUOUS = "{name!r} is ambiguous:"


def _of_several(name: str, why: str) -> bool:
    """Whether a name was found to match no paper, or several alike ("mixture of experts"), as a kind of approach
    does."""
    return why == no_match(name) or why.startswith(AMBIGUOUS.format(name=name))


def row_name(name: str, paper: Paper) -> str:
    """How a comparison labels a paper: its title's system name, else the name as the title (or else the abstract)
    writes it ('megatronlm' → 'Megatron-LM', 'sets are all you need' → 'Sets are all you need'), else as typed. A
    plain word the title holds names no paper ("the paper on jet tagging" found 'jet'): the title labels it; so do title
    words after its opening that are written as no name ("Knowledge Distillation" is not "Compact Language Models via
    Pruning and Knowledge Distillation"; "Reducing Activation Recomputation" opens its title)."""
    if system := system_name(paper.title):
        return system
    wanted = {compact(v) for v in _variants(name)} - {""}
    if compact(paper.title) in wanted:  # NOTE: as written, colon and all
        return paper.title
    for text in (paper.title, paper.abstract):
        words = [w.strip(",.;:!?()[]\"'“”‘’") for w in text.split()]
        for n in range(1, 13):
            for i in range(len(words) - n + 1):
                if compact(span := " ".join(words[i : i + n])) in wanted:
                    inside = text is paper.title and i > 0 and not system_names(span)
                    return span if any(ch.isupper() or ch.isdigit() for ch in span) and not inside else paper.title
    return name


def _initials(title: tuple[str, ...]) -> frozenset[str]:
    """The acronyms a title's words spell: 'llm' of 'large language models', 'moe' of 'mixture of experts'."""
    return frozenset("".join(w[0] for w in title[i : i + n]) for n in range(2, 6) for i in range(len(title) - n + 1))


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def _in_title(text: str, title: str) -> bool:
    """Whether every word of a text but stop words is a word of the title or an acronym of its words ("MoE")."""
    words, initials = norm_words(title), _initials(norm_words(title))
    return all(w in words or _singular(w) in initials for w in norm_words(text) if w not in STOPWORDS)


def _recased(name: str, title: str) -> bool:
    """Whether a name cased like one ("ZeRO", "vLLM") is a plain word of the title cased otherwise ("Zero Bubble
    ..."), which does not denote it."""
    words = title.split()
    return bool(_CASED_NAME.fullmatch(name)) and name not in words and name.lower() in (w.lower() for w in words)


def split_names(request: str) -> list[str]:
    """The comma-separated pieces of a request: 'Compare A, B and C' → ['A', 'B and C'].

    `NameResolver.resolve_request` splits a piece at 'and', 'vs' or 'with' only where the whole piece
    names no paper, so titles containing those words survive.
    """
    return [p for p in (_clean(x) for x in _pieces(request)) if p]


def _clean(name: str) -> str:
    # NOTE: and a joiner after a comma: "Compare LightSeq, the sequence parallelism system, with GPipe"
    name = re.sub(r"^(?:and|or|with(?!\s+respect)|vs\.?|versus|against)\s+", "", name.strip(), flags=re.IGNORECASE)
    previous = None
    while previous != name:
        previous, name = name, _FILLER.sub("", name).strip()
    name = re.sub(r"['’]s$", "", name.strip(" \"'“”‘’"))
    name = _DANGLING.sub("", name)  # NOTE: "FP8 on" is no name; "FP8" is
    return name if any(w not in STOPWORDS for w in norm_words(name)) else ""


def _variants(name: str) -> list[str]:
    """A name as typed, without its parentheses, and what they hold: '2BP (2-stage backpropagation)'."""
    ends = re.fullmatch(r"(.+?)\s*\(([^()]*)\)", name)
    return [name, ends.group(1), ends.group(2)] if ends and ends.group(2).strip() else [name]


@dataclass(frozen=True)
class _Keys:
    paper: Paper
    system: str
    title_words: tuple[str, ...]
    title_set: frozenset[str]  # the same, for lookups
    title_content: tuple[str, ...]  # the title's words but stop words
    title_initials: frozenset[str]  # the initials of each run of two to five title words ('llm', 'moe')
    title_tokens: frozenset[str]
    abstract_names: frozenset[str]
    cited_names: frozenset[str]  # of those, the ones it writes once and not as its own (another's work it cites)


@dataclass(frozen=True)
class _Variant:
    """A name as NameResolver._score reads it, read once for every paper."""

    name: str
    compact: str
    words: tuple[str, ...]  # its content words
    singular: tuple[str, ...]  # each of them in the singular

    @classmethod
    def of(cls, name: str) -> _Variant:
        words = tuple(w for w in norm_words(name) if w not in STOPWORDS)
        return cls(name, compact(name), words, tuple(_singular(w) for w in words))


@dataclass(frozen=True)
class Match:
    """What a name denotes: a paper and how surely (0 to 1), or None and why not."""

    paper: Paper | None
    certainty: float = 0.0
    why: str = ""
    described: bool = False  # found by what the name says (NameResolver.by_meaning), not by the name itself
    mentioned: bool = False  # found only among the names its abstract mentions (a baseline, a tool it builds on)
    cited: bool = False  # and among those its abstract writes once and not as its own: never the paper itself


Reading = list[tuple[str, Match]]
Describer = Callable[[str, frozenset[str]], Match | None]


class NameResolver:
    """Matches approach names to papers: system names, acronyms, title words, spelling variants."""

    def __init__(self, papers: Sequence[Paper], by_meaning: Describer | None = None) -> None:
        """`by_meaning` is asked for a name that matches no paper by name: a description ("the Mixtral offloading
        paper")."""
        self.keys = _keys_of(papers)
        self.by_meaning = lru_cache(maxsize=256)(by_meaning) if by_meaning else None

    @staticmethod
    def keys_of(papers: Sequence[Paper]) -> list[_Keys]:
        """What each paper may be called. NOTE: an English word is not a name for a paper whose title or abstract
        capitalises it ("limited", "energy", "Memory"): a single word counts as a name only if fewer than COMMON_IN
        abstracts use it in lower case."""
        used = Counter(w for p in papers for w in set(re.findall(r"\b[a-z][a-z0-9-]*\b", p.abstract)))
        common = frozenset(compact(w) for w, n in used.items() if n >= COMMON_IN)
        return [NameResolver._keys(p, common) for p in papers]

    @staticmethod
    def _keys(paper: Paper, common: frozenset[str]) -> _Keys:
        tokens = paper.title.split()
        runs = {compact(" ".join(tokens[i : i + n])) for n in (1, 2, 3) for i in range(len(tokens) - n + 1)}
        runs -= common
        # NOTE: a name introduced only in the abstract ("we develop Lamina", "we build vLLM") counts when it is
        # written like a name: capitalised, with an inner capital or with digits, and not a sentence-initial word.
        # A name with a version or size after a hyphen ("Mixtral-8x7B", "Llama-2") also names its family ("Mixtral"),
        # so a family several abstracts mention is ambiguous, not the first paper's.
        # A name of two capitalised words or a word and a version ("Switch Transformer", "InternVL 2.5") counts whole.
        # A name written once, where the abstract cites others' work, is another's: "vision modules from BLIP-2 or
        # CLIP" (TinyGPT-V), "such as TinyLaVA and MobileVLM v2" (ML-Mamba); it is kept apart, to say so.
        forms = {
            form
            for m in re.finditer(
                r"(?<![.!?]\s)(?<!^)\b[A-Z][\w.-]*[A-Za-z0-9]|\b[a-z]+[A-Z][\w.-]*|\b\w*\d\w*\b", paper.abstract
            )
            for form in (m.group(0), m.group(0).split("-")[0])
        } | {m.group(0) for m in _TWO_WORD_NAME.finditer(paper.abstract)}
        cited = {compact(f) for f in forms if _cites(f, paper.abstract)}
        own = {compact(f) for f in forms} - cited
        return _Keys(
            paper=paper,
            system=compact(system_name(paper.title) or ""),
            title_words=norm_words(paper.title),
            title_set=frozenset(norm_words(paper.title)),
            title_content=tuple(w for w in norm_words(paper.title) if w not in STOPWORDS),
            title_initials=_initials(norm_words(paper.title)),
            title_tokens=frozenset(r for r in runs if r),
            abstract_names=frozenset(n for n in own | cited if len(n) >= 3 and n not in common),
            cited_names=frozenset(n for n in cited if len(n) >= 3 and n not in common),
        )

    @staticmethod
    def _score(variant: _Variant, keys: _Keys) -> float:
        """How surely a name (one of its `_variants`) denotes the paper (0 to 1)."""
        name, nc, words = variant.name, variant.compact, variant.words
        if not nc:
            return 0.0
        if keys.system and nc == keys.system:
            return 1.0
        if nc in keys.title_tokens and not _recased(name, keys.paper.title):
            return 0.95
        if len(words) >= 2:
            n = len(words)
            title, content = keys.title_set, keys.title_content
            if words[0] in title and any(words == content[i : i + n] for i in range(len(content) - n + 1)):
                # NOTE: four words of a title in its order are as sure as its system name: "compact language models
                # via pruning and knowledge distillation" is not COMPACT, whose name is its first word
                return 1.0 if n >= 4 else 0.9
            # NOTE: an acronym counts as the title words it stands for ("LLMs", "MoE")
            initials = keys.title_initials
            covered = sum(w in title or one in initials for w, one in zip(words, variant.singular, strict=True)) / n
            if covered >= 0.75:
                return 0.75 * covered
        if nc in keys.abstract_names and not nc.isdigit():
            return MENTIONED
        # NOTE: two strings this unlike in length cannot be SPELLING alike (difflib's real_quick_ratio, without
        # building a matcher for every paper)
        if (
            keys.system
            and len(nc) >= 4
            and 2 * min(len(nc), len(keys.system)) >= SPELLING * (len(nc) + len(keys.system))
        ):
            similar = difflib.SequenceMatcher(None, nc, keys.system)
            # NOTE: quick_ratio bounds ratio from above and costs a fraction of it
            if similar.quick_ratio() >= SPELLING and (ratio := similar.ratio()) >= SPELLING:
                return 0.6 * ratio
        return 0.0

    def resolve(self, name: str, *, describe: bool = True, elsewhere: frozenset[str] = frozenset()) -> Match:
        """The paper a name denotes, by name or else (with `describe`) by meaning, or None and why not."""
        variants = _variants(name)
        read = [_Variant.of(v) for v in variants]
        scored = sorted(
            ((max(self._score(v, k) for v in read), k) for k in self.keys),
            key=lambda x: x[0],
            reverse=True,
        )
        if not scored or scored[0][0] < RESOLVED:
            why = no_match(name)
        elif len(scored) > 1 and scored[0][0] < 1.0 and scored[1][0] >= scored[0][0] - AMBIGUOUS_MARGIN:
            why = f"{AMBIGUOUS.format(name=name)} “{scored[0][1].paper.title}” or “{scored[1][1].paper.title}”"
        else:
            certainty, keys = scored[0]
            written = [compact(v) for v in variants if compact(v) in keys.abstract_names]
            mentioned = certainty == MENTIONED and bool(written)
            cited = mentioned and all(w in keys.cited_names for w in written)
            return Match(keys.paper, certainty, mentioned=mentioned, cited=cited)
        described = self.by_meaning(name, elsewhere) if describe and self.by_meaning else None
        return described or Match(None, 0.0, why)

    def resolve_request(self, request: str) -> tuple[list[tuple[str, Paper]], list[str], list[str], dict[str, str]]:
        """Resolved (name, paper) pairs in request order, unresolved names, the reasons, and the papers found unsurely,
        by id, with the words that found them: what the request says of them, or a name that is not their title's or
        system's."""
        pieces = _pieces(request)
        # NOTE: ", with respect to memory", ", especially regarding accuracy", ", whats the difference": not names; nor
        # is a question that opens the request and names no paper ("Which is better for phones, MiniCPM-V or …?")
        asides = [
            bool(n and _PURPOSE.match(f" {piece}")) or bool(_ASIDE.match(piece)) for n, piece in enumerate(pieces)
        ]

        def read(elsewhere: frozenset[str]) -> Reading:
            return [
                named
                for n, piece in enumerate(pieces)
                if not (asides[n] and n)
                for reading in [self.read(piece, elsewhere)]
                if not (asides[n] and len(pieces) > 1 and not any(m.paper for _, m in reading))
                for named in reading
            ]

        readings = read(frozenset())
        # NOTE: a description is not of a paper the request names otherwise ("Minitron vs the study that upcycles
        # Nemotron-4 15B": Minitron's paper, also on Nemotron, is not the runner-up that makes the description unsure)
        named = frozenset(m.paper.paper_id for _, m in readings if m.paper and not m.described)
        if named and self.by_meaning:
            again = read(named)
            if sum(bool(m.paper) for _, m in again) > sum(bool(m.paper) for _, m in readings):
                readings = again
        surest: dict[str, tuple[str, Match]] = {}
        for name, match in readings:
            if match.paper and match.certainty > surest.get(match.paper.paper_id, ("", Match(None)))[1].certainty:
                surest[match.paper.paper_id] = (name, match)
        found: list[tuple[str, Paper]] = []
        unresolved: list[str] = []
        reasons: list[str] = []
        unsure: dict[str, str] = {}
        for name, match in readings:
            keeper = surest[match.paper.paper_id][0] if match.paper else name
            another = keeper != name and match.mentioned and compact(name) != compact(keeper)
            if match.paper and (match.cited or another):
                # NOTE: "FBI-LLM vs BitNet": a name the paper's abstract only mentions is not a second paper; nor one it
                # cites ("BLIP-2", which TinyGPT-V builds on) a first
                match = Match(None, 0.0, f"{name!r} names no indexed paper; “{match.paper.title}” mentions it")
            elif (
                match.paper
                and keeper != name
                and ((match.described and not _apposed(pieces, keeper, name)) or _versus(pieces, keeper, name))
            ):
                # NOTE: "megatron sequence parallelism vs LightSeq" compared LightSeq alone without a word of the rest;
                # so did "LightSeq vs sequence parallelism for long context", whose second name is LightSeq's title
                why = f"{name!r} reads as “{match.paper.title}”, compared as {keeper!r}; no other paper is surely it"
                match = Match(None, 0.0, why)
            if match.paper is None:
                unresolved.append(name)
                reasons.append(match.why)
            elif keeper == name and all(p.paper_id != match.paper.paper_id for _, p in found):
                # NOTE: a paper found by what it is about is shown by its title, not by the words that describe it
                found.append((match.paper.title if match.described else name, match.paper))
                if match.described or match.certainty <= DESCRIBED_AT_MOST:
                    unsure[match.paper.paper_id] = name
        return found, unresolved, reasons, unsure

    def read(self, piece: str, elsewhere: frozenset[str] = frozenset()) -> Reading:
        """The names in one comma-separated piece of a request.

        Names may end at any word or where a purpose clause begins ("… as ways to make training efficient",
        "…: how does each …"). The reading whose names are surest wins (each adds its certainty above RESOLVED),
        then the one with fewest unknown names holding a purpose clause, then the one with the most names (unknown
        words count as one only when they could be a name, `_name_like`), then the
        one whose resolved names use the most words and unresolved ones the fewest, so a purpose clause or a
        description after a name ("bunny small multimodal models") is neither taken for a name nor reported as one.
        """
        # NOTE: a reading may stop at a word only where what it leaves unread holds no joiner before a purpose clause:
        # "the EAGLE speculative decoding method with Medusa" must not stop at "EAGLE" and lose "Medusa"
        purposes = {m.start() for m in _PURPOSE.finditer(piece)}
        ends = purposes | {
            m.start() for m in re.finditer(r"\s", piece) if not _joins_before_purpose(piece[m.start() :])
        }
        best: tuple[tuple[float, int, int, int], Reading] = ((0.0, 0, 0, 0), [])
        for end in sorted(ends - {0} | {len(piece)}):
            reading = self._names(piece[:end], elsewhere)
            # NOTE: what a reading leaves unread up to a purpose clause must be able to describe its last paper: "that
            # FPGA jet-tagging work for the HL-LHC" does not stop at "FPGA", a title word of LightMamba
            unread = piece[end : min((p for p in purposes if p >= end), default=len(piece))]
            if reading and (last := reading[-1][1].paper) and not _describes(last, unread):
                continue
            # NOTE: nor does an unknown name stop short of the rest of its words ("CPU offloading" is not "CPU",
            # "Disaggregated inference" not "Disaggregated") unless it is written as a system's name is ("GradWeave
            # optimizers", "the FlashZip compression kernel")
            if reading and reading[-1][1].paper is None and content_words(unread) and not system_names(reading[-1][0]):
                continue
            value = (
                sum(m.certainty - RESOLVED for _, m in reading if m.paper),
                -sum(not m.paper and bool(_PURPOSE.search(name)) for name, m in reading),
                sum(bool(m.paper) or _name_like(name) for name, m in reading),
                sum(len(name.split()) * (1 if m.paper else -1) for name, m in reading),
            )
            if reading and (not best[1] or value > best[0]):
                best = (value, reading)
        return best[1]

    def _names(self, text: str, elsewhere: frozenset[str] = frozenset()) -> Reading:
        whole = _clean(text)
        if not whole:
            return []
        # NOTE: the whole text first, by name only, so a title containing "and" is not cut in two; not by what a
        # parenthesis holds, which names only the name just before it.
        match = self.resolve(_PARENTHESIS.sub("", whole), describe=False)
        if match.certainty >= SURELY:
            return [(whole, match)]
        sides = [x for x in _outside_parentheses(_VERSUS, text) if _clean(x)]
        if len(sides) > 1:
            readings = [self.read(side, elsewhere) for side in sides]
            out: Reading = []
            for i, (side, side_reading) in enumerate(zip(sides, readings, strict=True)):
                out += side_reading
                # NOTE: a clause ends the names, "vs" in it too ("FlashZip differ in handling compute-bound vs
                # memory-bound work"), unless a sure name follows
                if _CLAUSE.search(side) and not any(
                    _surely_named(n, m) for later in readings[i + 1 :] for n, m in later
                ):
                    break
            return out
        parts = [p for p in (_clean(x) for x in _outside_parentheses(_JOINERS, text)) if p]
        if len(parts) < 2:  # NOTE: "compared with FastCache": one name, after a word that names nothing
            return [self._named(parts[0] if parts else whole, elsewhere)]
        reading = [self._named(part, elsewhere) for part in parts]
        for i, (part, part_match) in enumerate(reading):
            clause = (part_match.described and _PURPOSE.search(part, 1)) or (
                part_match.paper is None and not _name_like(part)
            )
            # NOTE: "LightMamba as FPGA accelerators for long sequences and state space models": a name found by what
            # its purpose clause says, or a clause, ends the list; what follows "and" is the clause. Not when a sure
            # name follows: "the paper that runs Mixtral on Colab by offloading experts with MoE-Lens"
            if clause and not any(_surely_named(name, m) for name, m in reading[i + 1 :]):
                reading = reading[: i + 1]
                break
        papers = [m.paper.paper_id for _, m in reading if m.paper]
        if (
            match.paper is not None
            and (len(papers) < len(reading) or len(set(papers)) < len(papers))
            and all(m.paper or _in_title(part, match.paper.title) for part, m in reading)
        ):
            # NOTE: "fast inference of MoE language models with offloading" is one title, not two names; its parts'
            # surest match for the same paper is how surely it names it. Not when a part that names nothing is no
            # words of that title: "tensor parallelism and sequence parallelism" is not LightSeq's
            same = [m.certainty for _, m in reading if m.paper and m.paper.paper_id == match.paper.paper_id]
            return [(whole, replace(match, certainty=max([match.certainty, *same])))]
        return reading

    def _named(self, name: str, elsewhere: frozenset[str] = frozenset()) -> tuple[str, Match]:
        """A name and what it denotes. One that denotes nothing may be a name and words that describe it ("GPipe
        pipeline schedule"): then its longest leading words that surely name a paper, written as a name is (with a
        capital or a digit; "see how they split attention" names nothing), when the rest is no purpose clause and
        the paper uses a word of it ("EAGLE speculative decoding" is not the indexed Eagle, on multimodal encoders)."""
        match = self.resolve(name, describe=False)
        words = name.split()
        for k in range(len(words) - 1, 0, -1) if match.paper is None else ():
            lead, rest = " ".join(words[:k]), " ".join(words[k:])
            if _PURPOSE.match(f" {rest}"):
                continue
            named = self.resolve(lead, describe=False)
            if named.paper and _surely_named(lead, named) and _describes(named.paper, rest):
                return lead, named
        return name, match if match.paper else self.resolve(name, elsewhere=elsewhere)


_keys_cache: dict[str, list[_Keys]] = {}
_keys_lock = threading.Lock()


def _keys_of(papers: Sequence[Paper]) -> list[_Keys]:
    """NameResolver.keys_of these papers, read once per distinct set of papers in the process: reading every abstract
    for the names it cites took a second, which each comparison paid."""
    key = hashlib.sha1("\n".join(f"{p.paper_id}:{p.content_hash}" for p in papers).encode()).hexdigest()
    with _keys_lock:
        if key not in _keys_cache:
            _keys_cache.clear()  # NOTE: one library at a time; a re-ingest makes the old keys stale
            _keys_cache[key] = NameResolver.keys_of(papers)
        return _keys_cache[key]


# Where an abstract cites others' work: after "from", "such as", "compared with" … (a few names may come between:
# "such as TinyLaVA and MobileVLM v2"), or in a bracketed list ("(GShard, Switch Transformer, Base Layers …)").
_CITING = (
    r"\b(?:from|upon|than|over|like|such as|e\.g\.,?|including|vs\.?|versus|compared (?:to|with)|against|beyond|"
    r"outperform\w*|surpass\w*)\s+(?:[\w.+-]+(?:,\s*|\s+(?:and|or)\s+|\s+)){0,4}?"
)


_CITED_BEFORE = re.compile(_CITING + r"\Z", re.IGNORECASE)


def _cites(name: str, abstract: str) -> bool:
    """Whether an abstract writes a name only as another's work it cites: once, where it cites ("vision modules from
    BLIP-2 or CLIP", "methods such as TinyLaVA and MobileVLM v2"), or in a bracketed list; not "our own automation
    infrastructure, MELT".

    NOTE: found with str.find, not a pattern per name: compiling one for each name of each abstract took a second."""
    if len(list(_occurrences(name, abstract))) != 1:
        return False
    lower = abstract.lower()
    # NOTE: where it cites, in any case ("from large language Models" cites "Models")
    if any(
        _ends_word(lower, i + len(name)) and _CITED_BEFORE.search(lower[max(0, i - 200) : i])
        for i in _occurrences(name.lower(), lower)
    ):
        return True
    start = next(_occurrences(name, abstract))
    end = start + len(name)
    opened, closed = abstract.rfind("(", 0, start), abstract.find(")", end)
    inside = opened > abstract.rfind(")", 0, start) and closed != -1 and "(" not in abstract[end:closed]
    return inside and _ends_word(abstract, end) and "," in abstract[opened + 1 : closed]


def _occurrences(name: str, text: str) -> Iterator[int]:
    """Where a name starts in a text, not inside a word (nor after a hyphen)."""
    at = text.find(name)
    while at != -1:
        if at == 0 or not _word_char(text[at - 1]):
            yield at
        at = text.find(name, at + 1)


def _ends_word(text: str, end: int) -> bool:
    return end == len(text) or not _word_char(text[end])


def _word_char(char: str) -> bool:
    return char.isalnum() or char in "_-"


def _as_a_term(name: str) -> re.Pattern[str] | None:
    """A name's words as a text writes them as a term of the field: together, and each in the case the name writes it
    but for its first letter ("pipeline parallelism", "Knowledge distillation" opening a sentence, "3D parallelism"),
    not as a name ("Megatron-LM" for "megatron lm")."""
    words = _WORDS.findall(name)
    if not words:
        return None

    def written(word: str) -> str:
        if any(c.isupper() or c.isdigit() for c in word[1:]):
            return re.escape(word)
        return f"[{re.escape(word[0].upper())}{re.escape(word[0].lower())}]{re.escape(word[1:])}"

    return re.compile(r"(?<![\w-])" + r"[\s-]+".join(written(w) for w in words) + r"s?(?![\w-])")


_WORDS = re.compile(r"[^\W_]+")


def _surely_named(name: str, match: Match) -> bool:
    """Whether a name denotes its paper surely: written as a name is (with a capital or a digit; "state space" is
    not, though a title holds it) and matching the paper's system name or a run of its title."""
    return match.certainty >= SURELY and not match.described and any(ch.isupper() or ch.isdigit() for ch in name)


def _words_as_written(text: str) -> set[str]:
    """The words of a text that `content_words` reads, as written: neither stemmed nor lower-cased."""
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*|\d+(?:\.\d+)?", text)
    return {w for w in words if len(w) > 1 and w.lower() not in STOPWORDS}


def _describes(paper: Paper, words: str) -> bool:
    """Whether words that follow a name may describe its paper: they say nothing ("paper", "work") or the paper uses
    one of them (a hyphenated word by its parts)."""
    said = content_words(_COMPOUND.sub(lambda m: m.group(0).replace("-", " "), words)) - _NAMING_NOUNS
    return not said or bool(said & paper_words(f"{paper.title}. {paper.abstract}"))


def _joins_before_purpose(tail: str) -> bool:
    """Whether text a reading leaves unread joins another name ("… with Medusa") before any purpose clause."""
    joiners = _outside(_JOINERS, tail)
    purpose = _PURPOSE.search(tail)
    return bool(joiners) and (purpose is None or joiners[0].start() < purpose.start())


def _name_like(text: str) -> bool:
    """Whether unknown words could be a name: at most three words, or a capital or digit ("FlashZip", "Tutel");
    "see how they split attention" is a clause."""
    return len(text.split()) <= 3 or any(ch.isupper() or ch.isdigit() for ch in text)


def _versus(pieces: Sequence[str], name: str, other: str) -> bool:
    """Whether one piece sets the two apart with "vs", "versus", "or" or "against", which only ever separate names."""
    for piece in pieces:
        sides = _outside_parentheses(_VERSUS, piece)
        at = [next((n for n, side in enumerate(sides) if text in side), -1) for text in (name, other)]
        if -1 not in at and at[0] != at[1]:
            return True
    return False


def _apposed(pieces: Sequence[str], name: str, description: str) -> bool:
    """Whether the description is a comma-separated piece of its own, opening with an article, just after the name's:
    "LightSeq, the sequence parallelism paper, and GPipe" says twice what LightSeq is; "megatron sequence
    parallelism vs LightSeq" names two."""
    at = [next((n for n, piece in enumerate(pieces) if text in piece), -1) for text in (name, description)]
    return at[0] >= 0 and at[1] == at[0] + 1 and bool(re.match(r"(?:the|a|an)\s", pieces[at[1]], re.IGNORECASE))


_BEFORE_NAME = re.compile(r"(?:^|[,;(/]|\b(?:and|or|vs\.?|versus|against|with|between|of)|\s-)\s*$", re.IGNORECASE)
_AFTER_NAME = re.compile(r"\s*(?:$|[,;?.!)/]|(?:and|or|vs\.?|versus|against)\b)", re.IGNORECASE)


def _stands_alone(request: str, name: str) -> bool:
    """Whether the request writes a name as a whole item of its list: between separators, joiners ("and", "vs", …)
    or a purpose clause, not cut from a description ("… with separate planning, decision and reflection agents" was
    read as a name "separate")."""
    body = _LEAD.sub("", request)
    for m in re.finditer(re.escape(name), body, re.IGNORECASE):
        before, after = body[: m.start()], body[m.end() :]
        if _BEFORE_NAME.search(before) and (_AFTER_NAME.match(after) or _PURPOSE.match(after)):
            return True
    return False


def _pieces(request: str) -> list[str]:
    body = _LEAD.sub("", request).strip().rstrip("?.!")
    return [p.strip() for p in _outside_parentheses(re.compile(r"\s*[,;]\s*"), body) if p.strip()]


def _outside(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """The matches of `pattern` in `text` that lie outside parentheses."""
    depth = [0] * (len(text) + 1)
    for i, ch in enumerate(text):
        depth[i + 1] = depth[i] + (ch == "(") - (ch == ")")
    return [m for m in pattern.finditer(text) if depth[m.start()] <= 0]


def _outside_parentheses(pattern: re.Pattern[str], text: str) -> list[str]:
    """`pattern.split(text)`, except inside parentheses: 'LLMA (inference with reference) and X' → 2 parts."""
    parts, start = [], 0
    for m in _outside(pattern, text):
        parts.append(text[start : m.start()])
        start = m.end()
    return [*parts, text[start:]]


# --- aspects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aspect:
    """How to recognise the sentences of an abstract that inform one column."""

    name: str
    description: str
    cues: re.Pattern[str] | None = None
    figure_bonus: float = 0.0
    early: float = 0.0  # bonus for sentences near the start (negative: near the end)
    threshold: float = 0.45
    words: frozenset[str] = frozenset()
    said: str = ""  # what the synthesis calls it ("The abstract of DeMo does not state the problem addressed.")

    @property
    def phrase(self) -> str:
        return self.said or f"anything on “{self.name}”"


def _cues(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")", re.IGNORECASE)


# NOTE: the four columns in rag.tuned.CELLS are filled by fitted models over each sentence's role (rag/roles.py);
# their descriptions only label them. The limitations column and custom ones are found by cue words and meaning.
ASPECTS: dict[str, Aspect] = {
    "problem addressed": Aspect(
        "problem addressed",
        "the problem, challenge or bottleneck that motivates the work",
        said="the problem addressed",
    ),
    "approach": Aspect(
        "approach", "the method, system or technique the paper proposes and how it works", said="the approach"
    ),
    "evaluation and reported results": Aspect(
        "evaluation and reported results",
        "experiments, benchmarks and the results the paper reports",
        said="an evaluation or its results",
    ),
    "efficiency/cost claims": Aspect(
        "efficiency/cost claims",
        "claims about speed, memory, compute, energy or monetary cost",
        said="efficiency or cost claims",
    ),
    "limitations": Aspect(
        "limitations",
        "limitations, drawbacks, trade-offs or open problems of the proposed work",
        _cues(*LIMITATION_CUES),
        early=-0.1,
        threshold=0.6,
        said="limitations",
    ),
}


# NOTE: MiniLM barely links a short aspect name ("hardware target") to the sentence that informs it
# ("... across 4 GPUs"), so custom aspects naming a common facet borrow that facet's cue words.
_FACETS = {
    "hardware": _cues(r"[GTCN]PUs?\b", r"FPGA", r"ASIC", r"accelerator", r"PIM\b", r"chip", r"mobile", r"phone",
                      r"edge device", r"cluster", r"Gaudi", r"A100", r"H100", r"hardware"),
    "dataset": _cues(r"dataset", r"benchmark", r"corpus", r"ImageNet", r"COCO", r"tasks?\b"),
    "data": _cues(r"dataset", r"benchmark", r"corpus", r"tokens\b", r"data\b"),
    "model": _cues(r"\d+(?:\.\d+)?\s?[BM]\b", r"billion", r"million", r"parameters", r"LLaMA", r"GPT", r"model"),
    "baseline": _cues(r"compared (?:to|with)", r"baseline", r"state-of-the-art", r"outperform", r"than\b"),
    "metric": _cues(r"accuracy", r"throughput", r"latency", r"perplexity", r"F1\b", r"BLEU", r"speed-?up"),
    "code": _cues(r"github", r"open[- ]source", r"code is available", r"release", r"publicly available"),
    "scale": _cues(r"\d[\d,.]*\s?(?:GPUs|nodes|parameters|tokens)", r"billion", r"scal"),
}  # fmt: skip


def aspect_for(name: str) -> Aspect:
    """A default aspect by name, or a custom one recognised by its words, common facet cues and meaning."""
    key = name.strip().lower()
    if key in ASPECTS:
        return ASPECTS[key]
    facets = [pattern.pattern for facet, pattern in _FACETS.items() if facet in key]
    cues = re.compile("|".join(facets), re.IGNORECASE) if facets else None
    return Aspect(name=name.strip(), description=name.strip(), cues=cues, threshold=0.4,
                  words=frozenset(content_words(name)))  # fmt: skip


_EMBEDDED_DIGITS = re.compile(r"\b(?=[\w.-]*[A-Za-z])(?=[\w.-]*\d)[\w.-]+\b")
# NOTE: a range too: "1.24-2.01x", "2-8x" are figures
_UNIT = re.compile(r"^(?:\d+(?:\.\d+)?[-–])?\d+(?:\.\d+)?(?:x|times|fold|k|m|b|gb|mb|tb|ms|s|w|mw)$", re.IGNORECASE)


def states_figure(text: str) -> bool:
    """Whether a sentence reports a figure; names with digits in them ('2BP', 'GPT-4', 'A100') are not figures."""
    return has_figure(_EMBEDDED_DIGITS.sub(lambda m: m.group(0) if _UNIT.match(m.group(0)) else " ", text))


# --- cells --------------------------------------------------------------------------------------

_ITSELF = r"(?:paper|work|survey|study|tutorial|article|report)\b"  # what "this …" names when a paper speaks of itself
_DISCOURSE = re.compile(
    r"^(?:in (?:this|our) (?:paper|work|study|article)|in addition|additionally|furthermore|moreover|specifically|"
    r"as a result|overall|to this end|in particular|finally|besides|notably|however|thus|therefore|hence|consequently|"
    r"nevertheless|unfortunately|in contrast|first(?: of all)?|second|third|firstly|secondly|thirdly|next|then|"
    r"further|also|accordingly|ultimately|concretely|to be specific|by doing so|yet|meanwhile|nonetheless|conversely|"
    r"similarly|likewise|instead|as such|among them|alternatively|last(?:ly)?|to summarize|in summary|essentially|"
    r"(?:more |most )?importantly|especially|particularly|for example|for instance|"
    r"(?:to (?:address|tackle|solve|overcome|mitigate|circumvent)|(?:inspired|motivated) by|based on|building on) "
    r"(?:this|these|that|those|such|it)(?: \w+)?"
    # NOTE: a phrase that points back before its comma: "In light of this", "Addressing these issues", "With this
    # design"; not "In this technical report", which points at itself
    r"|(?:in light of|in|given|despite|addressing|considering|through|with|using|under|by \w+ing|to \w+|among|for|"
    r"after|from|beyond|unlike|following)\b[^,;:]{0,40}?\b(?:this|these|those|such|them)\b"
    rf"(?! (?:\w+ ){{0,2}}{_ITSELF})[^,;:]{{0,30}})\s*,\s*",
    re.IGNORECASE,
)


def tidy(sentence: str) -> str:
    """A whole sentence for a cell, without an opener that points elsewhere ("In this paper, ", "Moreover, ")."""
    text = _DISCOURSE.sub("", sentence.strip())
    return text[:1].upper() + text[1:]


# A sentence needs the one before it when, once tidied, it opens by pointing back (rag.text.leans_on_previous) but not
# at its paper ("This paper introduces …"), opens with "the approach" or "the method" that sentence names, or points
# back within its first words ("The key idea behind this improvement is …", "We achieve this for …"; not "such as").
_OF_ITSELF = re.compile(rf"^(?:this|these) {_ITSELF}", re.IGNORECASE)
_NAMED_BEFORE = re.compile(r"^the (?:approach|method|system|framework|model|technique|scheme|design)\b", re.IGNORECASE)
_POINTS_BACK = re.compile(
    r"^(?:[\w-]+\s+){1,6}?(?:this|these|those|such)\s+(?!as\b)"
    rf"(?!(?:[\w-]+\s+){{0,2}}?{_ITSELF})[\w-]+",
    re.IGNORECASE,
)


# … or names, anywhere, a problem or finding the sentence before it stated ("We present FastCache, a novel serving
# framework that effectively addresses these challenges …"; not "these challenges of …", which says which).
_REFERS_BACK = re.compile(
    r"\b(?:(?:this|these|those|such)\s+(?:[\w-]+\s+)?(?:challenges?|problems?|issues?|limitations?|bottlenecks?|"
    r"drawbacks?|gaps?|shortcomings?|obstacles?|difficult(?:y|ies)|concerns?|questions?|observations?|insights?|"
    r"findings?|trade-?offs?)\b(?!\s+(?:of|in|that|which|where|when|between|with|for)\b)|(?:above|afore)-?mentioned\b)",
    re.IGNORECASE,
)


def needs_previous(sentence: str) -> bool:
    """Whether a sentence read alone needs the one before it: also an item that goes on with a list the one before it
    began (rag.text.continues_list; a blind judge read "(2)" and "(3)" with no "(1)" in two dev drafts)."""
    text = tidy(sentence)
    if _NAMED_BEFORE.match(text) or _POINTS_BACK.match(text) or _REFERS_BACK.search(text) or continues_list(text):
        return True
    return leans_on_previous(text) and not _OF_ITSELF.match(text)


def with_context(sentences: Sequence[str], rows: Iterable[int], words: int | None = None) -> list[int]:
    """The rows of an abstract's sentences in order, each that needs the sentence before it with that one too (and
    so on back), while they hold at most `words` words."""
    chosen = set(rows)
    total = sum(len(sentences[i].split()) for i in chosen)
    for i in sorted(chosen):
        while i > 0 and i - 1 not in chosen and needs_previous(sentences[i]):
            size = len(sentences[i - 1].split())
            if words is not None and total + size > words:
                break
            i -= 1
            chosen.add(i)
            total += size
    return sorted(chosen)


@dataclass
class _Sentence:
    text: str
    rank: float  # position in the abstract, 0 (first) to 1 (last)


class CellFiller:
    """Fills the cells of one paper from its abstract's sentences (the offline engine)."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray]) -> None:
        self.embed = embed
        self._descriptions: dict[str, np.ndarray] = {}

    def describe(self, aspects: Sequence[Aspect]) -> np.ndarray:
        """Embeddings of the aspects' descriptions, computed once per filler."""
        missing = [a.description for a in aspects if a.description not in self._descriptions]
        if missing:
            self._descriptions.update(zip(missing, self.embed(missing), strict=True))
        return np.stack([self._descriptions[a.description] for a in aspects])

    def score(self, aspect: Aspect, sentence: _Sentence, similarity: float) -> float:
        """How well a sentence fits a column found by cue words and meaning (limitations, custom columns)."""
        text = sentence.text
        value = 0.5 * similarity
        if aspect.cues is not None:
            value += min(0.5, 0.25 * len(aspect.cues.findall(text)))
        if aspect.words:
            value += 0.5 * len(aspect.words & content_words(text)) / len(aspect.words)
        value += aspect.early * (1 - 2 * sentence.rank)
        return value

    def fill(self, n: int, paper: Paper, chunks: Sequence[Chunk], aspects: Sequence[Aspect]) -> dict[str, Cell]:
        """One cell per aspect: whole sentences, verbatim, cited as [n], or NOT_STATED.

        Default columns are filled by `choose_sentences` from their fitted models (rag.tuned.CELLS), each sentence in
        one of them (`shown_once`): a column all of whose sentences another shows points there ("see “evaluation and
        reported results”"), as a result that is also the paper's cost claim does.
        """
        texts = sentences_of(paper)
        if not texts:
            return {a.name: Cell(text=NOT_STATED) for a in aspects}
        cells: dict[str, Cell] = {}
        learned = [a for a in aspects if a.name in CELLS]
        if learned:
            probs = roles_of(paper)
            likely = {a.name: CELLS[a.name].probabilities(cell_features(texts, probs, a.name)) for a in learned}
            picked = choose_sentences(texts, likely, roles=role_columns(probs))
            shown = {i for rows in picked.values() for i in rows}
            if picked.get(APPROACH):
                # NOTE: the approach opens where the paper presents itself, in place of its last runners-up if the
                # cell would run over: "In gamma-MoD, a novel metric is proposed …" never said what gamma-MoD is. A
                # blind judge preferred such cells in 26 of the 37 dev rows they changed, the others in 9
                for i in presenting(texts, paper.title):
                    if i not in shown:
                        rows = [i, *picked[APPROACH]]
                        while len(rows) > 2 and sum(len(texts[j].split()) for j in rows) > CELL_WORDS:
                            rows.pop()
                        picked[APPROACH] = rows
            if picked.get(PROBLEM) == [] and 0 not in shown and probs[0, COLUMNS.index("background")] >= ROLE_STATED:
                picked[PROBLEM] = [0]  # NOTE: an abstract that opens on its background states what it addresses
                # there ("Training large neural networks typically requires sharing gradients … through specialized
                # high-speed interconnects"): DeMo's problem read "not stated"
            once, pointing = shown_once(picked, texts)
            for name, chosen in once.items():
                cells[name] = self._cell(n, texts, chosen)
            for name, owner in pointing.items():
                cells[name] = Cell(text=f"see “{owner}”", citations=[n], quote=cells[owner].quote, same_as=owner)
        found = [a for a in aspects if a.name not in CELLS]
        if found:
            total = max(len(texts) - 1, 1)
            sentences = [_Sentence(text, i / total) for i, text in enumerate(texts)]
            # NOTE: the stored chunk vectors serve the limitations column when the chunks are the sentences (a
            # sentence over the chunk size is stored in pieces; cells show whole sentences). They encode the paper's
            # title with each sentence, which a column the user names matches less well than the sentence alone: on
            # the dev requests, 8 of 12 such cells held their phrase with the sentences encoded alone, 6 with the
            # stored vectors (BENCHMARKS.md). The limitations column's cells were the same either way.
            stored = [c.embedding for c in chunks if c.embedding is not None]
            same = len(stored) == len(texts) and [c.text for c in chunks] == texts
            own = all(a.name in ASPECTS for a in found)
            vectors = np.stack(stored) if same and own else self.embed(texts)
            sims = vectors @ self.describe(found).T
            for j, aspect in enumerate(found):
                scores = np.array([self.score(aspect, s, float(sims[i, j])) for i, s in enumerate(sentences)])
                cells[aspect.name] = self._cell(n, texts, _pick(scores, texts, aspect.threshold, more=True))
        return {a.name: cells[a.name] for a in aspects}

    @staticmethod
    def _cell(n: int, texts: Sequence[str], chosen: Sequence[int]) -> Cell:
        if not chosen:
            return Cell(text=NOT_STATED)
        order = with_context(texts, chosen, CONTEXT_WORDS)
        return Cell(
            text=" ".join(tidy(texts[i]) for i in order),
            citations=[n],
            quote=_stitch([texts[i].strip() for i in order], order),
        )


def role_columns(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per default column with a role (all but cost), P(each sentence plays it); `probs` from rag.roles."""
    return {name: probs[:, COLUMNS.index(role)] for name, role in ASPECT_ROLE.items() if role in ROLES}


def choose_sentences(
    texts: Sequence[str],
    likely: dict[str, np.ndarray],
    stated_at: Mapping[str, float] = STATED_AT,
    roles: Mapping[str, np.ndarray] | None = None,
) -> dict[str, list[int]]:
    """The sentences each default column shows, from P(the sentence informs the column) (rag.tuned.CELLS).

    A column under its STATED_AT level is not stated, unless a sentence plays its role at P ≥ ROLE_STATED (`roles`,
    from `role_columns`). Otherwise it shows its likeliest sentence and the runners-up at least RUNNER_UP as likely,
    while it fits in CELL_WORDS. Of two columns that would show the same sentences, the
    one they inform less shows its likeliest others instead, if one is stated enough. Then a sentence no column shows
    yet joins the stated column it is likeliest to inform, if it is at least LEFT_OVER as likely there as that
    column's best and the cell still fits: what the abstract says is in its row unless it informs no column at all.
    """
    # NOTE: a sentence that points back ("It uses …", "These tokens …") counts half when sentences are ranked (not
    # when deciding whether the column is stated): read alone in a cell, it needs the one before it. One that gives a
    # link ("The code is available at https://…") informs no default column (a column the user adds for code may
    # show it), nor does one that only announces a list ("We contribute in three significant ways.")
    standalone = np.array(
        [0.0 if points_elsewhere(t) or announces(t) else 0.5 if leans_on_previous(t) else 1.0 for t in texts]
    )
    values = {name: p * standalone for name, p in likely.items()}
    roles = roles or {}
    said = {name: p.max() >= stated_at[name] or (name in roles and roles[name].max() >= ROLE_STATED)
            for name, p in likely.items()}  # fmt: skip
    chosen = {name: _pick(values[name], texts, 0.0, more=True) if said[name] else [] for name in likely}
    # NOTE: identical cells read as one (42 of 108 dev rows had them, mostly results and efficiency): over the dev
    # requests, facts in the right row 0.870 → 0.879, in the right cell 0.792 → 0.785
    for name, picked in chosen.items():
        twin = next((other for other, same in chosen.items() if other != name and same and same == picked), None)
        if twin is None or likely[name][picked].mean() > likely[twin][picked].mean():
            continue
        others = values[name].copy()
        others[picked] = 0.0
        if others.max() >= stated_at[name]:
            chosen[name] = _pick(others, texts, 0.0, more=True)
    shown = {i for picked in chosen.values() for i in picked}
    stated = [name for name, picked in chosen.items() if picked]
    for i in (i for i in range(len(texts)) if i not in shown and stated):
        name = max(stated, key=lambda name: values[name][i])
        words = sum(len(texts[j].split()) for j in chosen[name]) + len(texts[i].split())
        if values[name][i] >= LEFT_OVER * values[name].max() and words <= CELL_WORDS:
            chosen[name].append(i)
    return chosen


_PRESENTS = re.compile(
    r"\b(?:we|this (?:paper|work|study|article))\s+(?:\w+\s+)?(?:propose|present|introduce|develop|design|build|"
    r"describe)s?\b",
    re.IGNORECASE,
)


def presenting(sentences: Sequence[str], title: str) -> list[int]:
    """The row of the sentence in which a paper presents itself: the first to write the system name its title leads
    with, else the first that says "we propose / present / introduce …" ("We present EE-LLM, a framework for …";
    "We propose mmMamba, a framework for developing linear-complexity native multimodal state space models …")."""
    name = system_name(title)
    written = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])") if name else None
    for pattern in (written, _PRESENTS):
        if pattern is not None:
            found = [i for i, text in enumerate(sentences) if pattern.search(text) and not announces(text)]
            if found:
                return found[:1]
    return []


def shown_once(
    chosen: Mapping[str, list[int]], texts: Sequence[str] = ()
) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Each sentence in one column of its row, the first (in the table's order) that shows it, or, for one that needs
    the sentence before it (`needs_previous`), that one's; and each later column left with none: the column that shows
    its best sentence, which it points to. A blind judge of sixteen dev comparisons found the same sentence in two
    cells of 34 of their 44 rows, most often the results under "efficiency/cost claims" too (thirty-fourth session);
    Zero Bubble's "This number can be further pushed to 31% …" brought its results sentence into a second cell."""
    owner: dict[int, str] = {}
    for name, picked in chosen.items():
        for i in picked:
            owner.setdefault(i, name)
    for i in sorted(owner):
        if i - 1 in owner and owner[i - 1] != owner[i] and i < len(texts) and needs_previous(texts[i]):
            owner[i] = owner[i - 1]
    rows = list(dict.fromkeys(i for picked in chosen.values() for i in picked))
    once = {name: [i for i in rows if owner[i] == name] for name in chosen}
    return once, {name: owner[picked[0]] for name, picked in chosen.items() if picked and not once[name]}


def _pick(values: np.ndarray, texts: Sequence[str], floor: float, *, more: bool) -> list[int]:
    """The best sentence at or above `floor`, and with `more` the next ones at least RUNNER_UP as good (and at or
    above `floor`), in order, while the cell fits in CELL_WORDS."""
    ranked = [int(i) for i in np.argsort(-values, kind="stable")]
    if not ranked or values[ranked[0]] < floor:
        return []
    chosen = [ranked[0]]
    words = len(texts[ranked[0]].split())
    for i in ranked[1:] if more else ():
        if values[i] < max(values[ranked[0]] * RUNNER_UP, floor):
            break
        if words + len(texts[i].split()) <= CELL_WORDS:
            chosen.append(i)
            words += len(texts[i].split())
    return chosen


# --- the comparison -----------------------------------------------------------------------------


class Comparer:
    """Builds comparisons over one index with either engine."""

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.settings = settings
        self.resolver = NameResolver(list(retriever.papers.values()), self.by_meaning)
        self.filler = CellFiller(self.embed)

    def embed(self, texts: list[str]) -> np.ndarray:
        return embed_texts(self.retriever.embedder, texts)

    @cached_property
    def similarity(self) -> Similarity:
        return grounding.similarity(self.retriever.embedder)

    def select(
        self, request: str, paper_ids: Sequence[str] | None
    ) -> tuple[list[tuple[str, Paper]], list[str], list[str], dict[str, str]]:
        """The papers to compare, the names or ids not found, warnings, and the kind of approach named in the request
        each paper stands for, by id ("offloading")."""
        if paper_ids:
            found, missing = [], []
            for pid in dict.fromkeys(paper_ids):
                paper = self.retriever.papers.get(pid)
                if paper is None:
                    missing.append(pid)
                else:
                    found.append((system_name(paper.title) or paper.title, paper))
            warnings = [f"paper id {pid!r} is not in the index; see `rag papers`" for pid in missing]
            return found, missing, warnings, {}
        found, unresolved, reasons, unsure = self.resolver.resolve_request(request)
        found, kinds, warnings = self._kinds_in_titles(request, found, unsure)
        # NOTE: a request that names no paper, or one paper unsurely (a description, or words that a title merely
        # contains: "methods for efficient LLM inference"), with at most one unknown thing and only words the library
        # uses, is a topic; unknown names ("FlashZip", "FlexGen and PowerInfer") are reported as such, not replaced by
        # whatever a topic search finds
        words = content_words(_LEAD.sub("", request))
        topic = not found or (len(found) == 1 and len(unsure) == 1)
        if topic and len(unresolved) <= 1 and len(words) >= 2 and all(w in self.retriever.idf for w in words):
            hits = self.retriever.search(_LEAD.sub("", request), k=TOPIC_FALLBACK_K)
            found = [(system_name(h.title) or h.title, self.retriever.papers[h.paper_id]) for h in hits]
            warnings = [
                f"no paper names recognised in the request; compared the {len(found)} papers that best match it"
            ]
            return found, [], warnings, {}
        # NOTE: a name of what papers write about ("pruning", "offloading") stands for the papers most about it
        missing = []
        for name, why in zip(unresolved, reasons, strict=True):
            writers = self.writers(name) if _of_several(name, why) else []
            family = [self.retriever.papers[pid] for pid, p in writers[:FAMILY_ROWS] if p >= FAMILY_AT]
            family = family if _stands_alone(request, name) else []
            if len(family) >= 2:  # NOTE: one paper about it is a description of that paper (by_meaning), or a misread
                # NOTE: one already compared stands for it too ("knowledge distillation, pruning and quantization":
                # Minitron's paper, found for the first, is the likeliest of the second)
                taken = {p.paper_id for _, p in found}
                found += [(system_name(p.title) or p.title, p) for p in family if p.paper_id not in taken]
                kinds.update((p.paper_id, name) for p in family if p.paper_id not in taken)
                shown = join_names([system_name(p.title) or f"“{p.title}”" for p in family])
                said = "names no paper" if why == no_match(name) else "names no one paper"
                warnings.append(f"{name!r} {said}; compared the papers most about it: {shown}")
                continue
            missing.append(name)
            if writers and why == no_match(name):
                titles = [self.retriever.papers[pid].title for pid, _ in writers[:WRITERS_SHOWN]]
                shown = join_names([system_name(t) or f"“{t}”" for t in titles])
                many = f"{len(writers)} indexed papers write of it, the closest {shown}"
                why = f"{name!r} names no paper; {many if len(writers) > 1 else f'only {shown} writes of it'}"
            warnings.append(f"not compared: {why}")
        return found, missing, warnings, kinds

    def _kinds_in_titles(
        self, request: str, found: list[tuple[str, Paper]], typed: Mapping[str, str]
    ) -> tuple[list[tuple[str, Paper]], dict[str, str], list[str]]:
        """The papers found, with a kind of approach that one paper's title holds ("knowledge distillation" in
        Minitron's, "pipeline parallelism" in Zero Bubble's) read as it is read when no title holds it: the papers most
        about it, that one among them. Not a paper's system name or whole title, nor words that describe one paper
        ("LightSeq, the sequence parallelism paper"), nor words fewer than two abstracts write as a term of the field
        ("decoupled momentum", DeMo's alone; "megatron lm", which abstracts write as a name).
        `typed` holds the words that found a paper, by id, where they are not the name it is shown by (its title, for
        one found by what they describe)."""
        out: list[tuple[str, Paper]] = []
        kinds: dict[str, str] = {}
        warnings: list[str] = []
        for shown, paper in found:
            name = typed.get(paper.paper_id, shown)
            own = {compact(paper.title), compact(system_name(paper.title) or paper.title)}
            family: list[Paper] = []
            if compact(name) not in own and _stands_alone(request, name) and self._a_term(name):
                # NOTE: the paper the words found is one of them, first if not among the likeliest; a paper the request
                # names otherwise is not ("knowledge distillation and LLaVA-KD")
                others = {p.paper_id for _, p in found} - {paper.paper_id}
                likeliest = [pid for pid, p in self.writers(name) if p >= FAMILY_AT and pid not in others][:FAMILY_ROWS]
                if paper.paper_id not in likeliest:
                    likeliest = [paper.paper_id, *likeliest[: FAMILY_ROWS - 1]]
                family = [paper if pid == paper.paper_id else self.retriever.papers[pid] for pid in likeliest]
            if len(family) < 2:
                out.append((shown, paper))
                continue
            taken = {p.paper_id for _, p in out}
            fresh = [p for p in family if p.paper_id not in taken]
            out += [(system_name(p.title) or p.title, p) for p in fresh]
            kinds.update((p.paper_id, name) for p in fresh)
            listed = join_names([system_name(p.title) or f"“{p.title}”" for p in family])
            warnings.append(f"{name!r} names no one paper; compared the papers most about it: {listed}")
        return out, kinds, warnings

    def _a_term(self, name: str) -> bool:
        """Whether two abstracts or more write a name's words as a term of the field (`_as_a_term`)."""
        pattern = _as_a_term(name)
        if pattern is None:
            return False
        # NOTE: its longest word looked for first, as plain text (but its first letter, which may be a capital): the
        # pattern, opening with a lookbehind, is tried at every position of every abstract (7 ms a name over the 168
        # bundled ones; 0.1 to 0.6 ms so)
        longest = max(_WORDS.findall(name), key=len)[1:]
        writing = (p for p in self.retriever.papers.values() if longest in p.abstract and pattern.search(p.abstract))
        return next(writing, None) is not None and next(writing, None) is not None

    def writers(self, name: str) -> list[tuple[str, float]]:
        """The papers that write every word of a name that may be of what papers write about rather than of a paper
        ("quantization", "offloading"), with the ranker's calibrated relevance to it read as a request for every paper
        about it ("which papers …"), likeliest first. None for a name that may be a system's ("FlashZip", "Tutel": a
        capital inside a word, a digit, or a word no paper writes)."""
        wanted = set(self.retriever.lexical.read(name))
        if not wanted or system_names(name) or not all(self._known(w) for w in _words_as_written(name)):
            return []
        return [
            (pid, p)
            for pid, p in self.retriever.score(name, many=True).ranked()
            if wanted
            <= set(self.retriever.lexical.tokens(f"{(paper := self.retriever.papers[pid]).title} {paper.abstract}"))
        ]

    def by_meaning(self, description: str, named: frozenset[str] = frozenset()) -> Match | None:
        """The one paper a description names by what it is about ("the Mixtral offloading paper"), if exactly one.

        Only descriptions: two to eight content words, each of them found in the library (an unknown word is more
        likely an unknown system's name, which must not be matched to whatever is closest). The best paper is taken
        when, by the ranker's calibrated relevance, it is more likely than not that it is relevant and the
        runner-up is not: certainty P(best) · (1 - P(second)) ≥ 0.5. A paper the request `named` otherwise is not
        the runner-up; when it is the best, the description is of it.
        """
        words = content_words(description)
        if not 2 <= len(words) <= 8 or not all(self._known(w) for w in _words_as_written(description)):
            return None
        ranked = self.retriever.score(description).ranked()
        if not ranked or ranked[0][0] in named:
            return None
        if len(ranked) > 1 and ranked[1][0] in named:
            # NOTE: a fragment of a description cut at a comma ("separate planning") says too little to be read
            # without its runner-up; a description of three or more words may
            if len(words) < 3:
                return None
            ranked = [ranked[0], *[(pid, p) for pid, p in ranked[1:] if pid not in named][:1]]
        else:
            ranked = ranked[:2]
        certainty = ranked[0][1] * (1 - (ranked[1][1] if len(ranked) > 1 else 0.0))
        paper = self.retriever.papers.get(ranked[0][0])
        if paper is None or certainty < 0.5:
            return None
        return Match(paper, min(certainty, DESCRIBED_AT_MOST), described=True)

    def _known(self, word: str) -> bool:
        """Whether the library uses a word. A lower-case hyphenated one is known by its parts too ("jet-tagging", which
        no abstract writes, is "jet tagging"; it still counts as one word: "memory-bound" alone describes no paper); a
        capitalised one ("Ring-Attention") may be a name, and must be known whole."""
        known = self.retriever.idf
        if word_key(word) in known:
            return True
        parts = [p for p in word.split("-") if p and p not in STOPWORDS]
        return word.islower() and len(parts) > 1 and all(stem(p) in known for p in parts)

    def compare(
        self, request: str, paper_ids: Sequence[str] | None = None, aspects: Sequence[str] | None = None
    ) -> Comparison:
        """The comparison matrix for a request (or explicit paper ids), engine from the settings."""
        names = [a.strip() for a in (aspects or DEFAULT_ASPECTS) if a.strip()]
        specs = [aspect_for(a) for a in dict.fromkeys(names)]
        found, unresolved, warnings, kinds = self.select(request, paper_ids)
        chunks = self.retriever.chunks_of([p.paper_id for _, p in found])
        by_paper: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_paper.setdefault(chunk.paper_id, []).append(chunk)
        sources = [
            Source(n, paper, tuple(c.text for c in by_paper.get(paper.paper_id, [])))
            for n, (_, paper) in enumerate(found, 1)
        ]
        rows = [
            Row(
                paper_id=paper.paper_id,
                title=paper.title,
                name=row_name(name, paper),
                cells=self.filler.fill(n, paper, by_paper.get(paper.paper_id, []), specs),
                kind=kinds.get(paper.paper_id),
            )
            for n, (name, paper) in enumerate(found, 1)
        ]
        result = Comparison(
            request=request or " ".join(paper_ids or []),
            aspects=[a.name for a in specs],
            rows=rows,
            synthesis="",
            unresolved=unresolved,
            warnings=warnings,
        )
        llm = grounding.model(self.settings, result.warnings, "compared offline") if rows else None
        if llm is not None:
            self._llm(llm, result, sources, specs)
        if not result.synthesis:
            result.synthesis = self.synthesis(rows, sources, specs)
        result.citations = [self._citation(row, source) for row, source in zip(rows, sources, strict=True)]
        return result

    @staticmethod
    def _citation(row: Row, source: Source) -> Citation:
        quotes = [c.quote for c in row.cells.values() if c.quote]
        return Citation(
            n=source.n,
            paper_id=row.paper_id,
            title=row.title,
            url=source.paper.url,
            quote=quotes[0] if quotes else (source.sentences[0] if source.sentences else ""),
        )

    # --- offline synthesis ----------------------------------------------------------------------

    def synthesis(self, rows: Sequence[Row], sources: Sequence[Source], aspects: Sequence[Aspect]) -> str:
        """A few cited sentences composed from the matrix: what the papers share, how each goes about it, the figures
        each reports, and what the abstracts leave unstated. Shared terms are the two-word phrases and acronyms of
        paper titles (unlike 'achieve', 'limit' or 'large'); approaches and figures are quoted as the abstract states
        them."""
        if not rows:
            return "Nothing to compare: no paper was resolved."
        docs = [f"{s.paper.title}. {' '.join(s.sentences)}" for s in sources]
        cite = {r.paper_id: f"{r.name} [{s.n}]" for r, s in zip(rows, sources, strict=True)}
        titles = list(self.retriever.papers.titles.values())
        # NOTE: a single lower-case word says little on its own ("limit", "distributed", "large"): terms are the
        # titles' two-word phrases and acronyms, less the compared papers' names ("DiLoCo" in DiPaCo's abstract)
        names = {w.lower() for r in rows for w in acronyms(r.name)}
        terms = {t for t in vocabulary_of(titles) if " " in t} | {
            w.lower() for t in titles for w in acronyms(t) if w.lower() not in names
        }
        parts: list[str] = []
        kinds: dict[str, list[str]] = {}
        for row in rows:
            if row.kind:
                kinds.setdefault(row.kind, []).append(cite[row.paper_id])
        if kinds:  # NOTE: which papers stand for each kind of approach the request named ("offloading vs pruning")
            said = "; ".join(f"for {kind}: {join_names(who)}" for kind, who in kinds.items())
            parts.append(f"F{said[1:]}.")
        if len(rows) > 1:
            shared = self._shared_terms(docs, terms)
            everyone = [t for t, members in shared if len(members) == len(rows)]
            if everyone:
                both = "both" if len(rows) == 2 else "all"
                parts.append(f"{join_names(list(cite.values()))} {both} concern {join_names(everyone)}.")
            # NOTE: one sentence per group of papers; "also" only after what all share, "both" only of two
            groups: dict[tuple[int, ...], list[str]] = {}
            for term, members in shared:
                if len(members) < len(rows):
                    groups.setdefault(tuple(members), []).append(term)
            for some, group in groups.items():
                who = join_names([cite[rows[i].paper_id] for i in some])
                also, both = " also" if everyone else "", " both" if len(some) == 2 else ""
                parts.append(f"{who}{also}{both} concern {join_names(group)}.")
        papers = {s.paper.paper_id: s.paper for s in sources}
        approaches = [
            _approach_clause(cell_sentences(own_cell(r, APPROACH), papers[r.paper_id]), cite[r.paper_id], r.name)
            for r in rows
            if APPROACH in r.cells
        ]
        approaches = [a for a in approaches if a]
        if approaches:
            parts.append(("How each goes about it: " if len(rows) > 1 else "") + "; ".join(approaches) + ".")
        figures = [
            (cite[r.paper_id], _figure_clause(cell_sentences(own_cell(r, RESULTS), papers[r.paper_id])))
            for r in rows
            if RESULTS in r.cells
        ]
        reported = [f"{who} reports “{clause}”" for who, clause in figures if clause]
        if reported:
            parts.append("; ".join(reported) + ".")
        parts += _largest_gains(rows, cite)
        unstated: dict[tuple[str, ...], list[str]] = {}
        for aspect in aspects:
            silent = tuple(cite[r.paper_id] for r in rows if r.cells[aspect.name].text == NOT_STATED)
            if silent:
                unstated.setdefault(silent, []).append(aspect.phrase)
        for silent, columns in unstated.items():
            what = join_names(columns, "or")
            if len(silent) == 1 and len(rows) > 1:
                parts.append(f"The abstract of {silent[0]} does not state {what}.")
            elif len(silent) < len(rows):
                parts.append(f"The abstracts of {join_names(list(silent))} do not state {what}.")
            else:
                parts.append(f"None of the abstracts states {what}." if len(rows) > 1 else f"It does not state {what}.")
        return " ".join(parts)

    def _shared_terms(self, docs: Sequence[str], titles: Collection[str], top: int = 3) -> list[tuple[str, list[int]]]:
        """Title terms two or more of the documents use, the most widely shared and rarest in the library first."""
        from rag.themes import surface_form, terms_of

        present = [set(terms_of(doc)) for doc in docs]
        spread = Counter(term for found in present for term in found)
        shared = {term for term, count in spread.items() if count >= 2 and term in titles}
        corpus = [set(terms_of(f"{p.title}. {p.abstract}")) & shared for p in self.retriever.papers.values()]
        df = Counter(term for found in corpus for term in found)
        idf = {term: np.log((1 + len(corpus)) / (1 + df[term])) for term in shared}
        out: list[tuple[str, list[int]]] = []
        for term in sorted(shared, key=lambda t: (-spread[t], -idf[t], t)):
            if idf[term] < SHARED_IDF or any(term in t.lower() or t.lower() in term for t, _ in out):
                continue
            # NOTE: mid-sentence, a title's capitals go ("Neural Networks" → "neural networks"; "GPU" stays)
            form = " ".join(w.lower() if w[1:] == w[1:].lower() else w for w in surface_form(term, docs).split())
            out.append((form, [i for i, found in enumerate(present) if term in found]))
            if len(out) == top:
                break
        return out

    # --- LLM engine -----------------------------------------------------------------------------

    def _llm(self, llm: LLM, result: Comparison, sources: Sequence[Source], aspects: Sequence[Aspect]) -> None:
        """Rewrite the cells and the synthesis with the model; every cell is checked against its abstract."""
        system, user = prompts.load("compare_system"), prompts.load("compare_user")
        result.engine = f"llm:{llm.model}"
        result.prompt = {"system": system.sha, "user": user.sha, "name": "compare"}
        fallbacks = 0
        try:
            for row, source in zip(result.rows, sources, strict=True):
                messages = [
                    {"role": "system", "content": system.render()},
                    {
                        "role": "user",
                        "content": user.render(
                            aspects=json.dumps([a.name for a in aspects]),
                            title=source.paper.title,
                            abstract=" ".join(source.sentences),
                        ),
                    },
                ]
                parsed, error = grounding.structured(llm, messages, _RowOut)
                if parsed is None:
                    result.warnings.append(
                        f"the model's reply for {row.name} [{source.n}] was not valid JSON after "
                        f"{grounding.JSON_ATTEMPTS} attempts ({error}); its cells are extractive"
                    )
                    continue
                fallbacks += self._merge(row, source, parsed, aspects)
            result.synthesis = self._llm_synthesis(llm, result, sources)
        except LLMError as exc:
            result.engine = "extractive"
            result.warnings.insert(0, f"{exc}; compared offline with the extractive engine instead")
        if fallbacks:
            result.warnings.append(
                f"{fallbacks} cell(s) written by the model were missing or not supported by the abstract; "
                "they are extractive"
            )
        result.usage = llm.usage.as_dict()

    def _merge(self, row: Row, source: Source, parsed: _RowOut, aspects: Sequence[Aspect]) -> int:
        """Take the model's cells that its abstract supports; keep the extractive cell otherwise."""
        fallbacks = 0
        by_name = {k.strip().lower(): v for k, v in parsed.cells.items()}
        for aspect in aspects:
            out = by_name.get(aspect.name.lower())
            text = re.sub(r"\s+", " ", out.text).strip() if out else ""
            if not text:
                fallbacks += 1
                continue
            if NOT_STATED.split(" in ")[0] in text.lower():
                row.cells[aspect.name] = Cell(text=NOT_STATED, origin="llm")
                continue
            score, best = support(text, source, self.similarity)
            if score < SUPPORT_OVERLAP:
                fallbacks += 1
                continue
            quote = out.quote.strip() if out else ""
            abstract = " ".join(" ".join(source.sentences).split())
            if not quote or " ".join(quote.split()) not in abstract:
                quote = best
            row.cells[aspect.name] = Cell(text=text, citations=[source.n], quote=quote, origin="llm")
        return fallbacks

    def _llm_synthesis(self, llm: LLM, result: Comparison, sources: Sequence[Source]) -> str:
        system, user = prompts.load("compare_synthesis_system"), prompts.load("compare_synthesis_user")
        table = "\n".join(
            f"[{s.n}] {row.name}: " + "; ".join(f"{a}: {c.text}" for a, c in row.cells.items())
            for row, s in zip(result.rows, sources, strict=True)
        )
        messages = [
            {"role": "system", "content": system.render()},
            {"role": "user", "content": user.render(request=result.request or "the papers below", table=table)},
        ]
        checked = grounding.written(llm, messages, sources, self.similarity)
        if checked.why:
            result.warnings.append(
                f"the model's synthesis could not be verified against the abstracts ({checked.why}); "
                "the offline synthesis is shown"
            )
            return result.synthesis
        if checked.removed:
            result.warnings.append(f"{checked.removed} synthesis sentence(s) no cited abstract supports were removed")
        return checked.text


# NOTE: after a phrase that sets the scene, too: "Through comprehensive experiments on …, we show that LightSeq …"
_LEAD_IN = re.compile(
    r"^(?:[^,]*,\s+)?(?:[\w-]+\s+){0,3}?(?:show|demonstrate|indicate|confirm|find|reveal)s?\s+that\s+", re.I
)
FIGURE_CLAUSE_WORDS = 30  # a longer sentence is cut at ';' or ', while/whereas/but' to its clause with the figure


def own_cell(row: Row, aspect: str) -> Cell:
    """A row's cell for the column, or the cell it points to (`shown_once`)."""
    cell = row.cells[aspect]
    return row.cells.get(cell.same_as, cell)


def cell_sentences(cell: Cell, paper: Paper) -> list[str]:
    """The sentences of a cell: the paper's sentences it holds, as the offline engine fills it, else (a model's
    prose) its text split; none when not stated."""
    if cell.text == NOT_STATED:
        return []
    if cell.origin == "extractive":
        held = [t for t in map(tidy, sentences_of(paper)) if t and t in cell.text]
        if held:
            return held
    return [s.strip() for s in split_sentences(cell.text) if s.strip()]


def _figure_clause(sentences: Sequence[str]) -> str:
    """The sentence (or clause of a long one) among a results cell's sentences that states a figure, without its lead-in
    ('Experiments show that X outperforms Y by up to 23%' → 'X outperforms Y by up to 23%'), or ''. A factor or a
    percentage first: "We evaluate LightSeq on Llama-7B … with sequence lengths from 32K to 512K" states the set-up's
    sizes, the next sentence what it found ("up to 1.24-2.01x end-to-end speedup")."""
    clauses = []
    for sentence in sentences:
        sentence = _LEAD_IN.sub("", sentence.strip())
        pieces = [sentence]
        if len(sentence.split()) > FIGURE_CLAUSE_WORDS:
            pieces = re.split(r";\s+|,\s+(?=(?:while|whereas|but)\b)", sentence)
        for piece in pieces:
            piece = _ITEM_MARK.sub("", piece.strip().rstrip(",;:."))
            if states_figure(piece) and len(piece.split()) <= FIGURE_CLAUSE_WORDS:
                clauses.append(piece[:1].upper() + piece[1:])
    found = (c for c in clauses if _FACTOR.search(c) and not _CONTINUES.match(c))
    # NOTE: then one that states more than a model's size: BlueLM-V-3B's "(1) Small Size: … 2.7B parameters" came
    # before its "(2) Fast Speed: … 24.4 token/s"
    measured = (c for c in clauses if states_figure(_SIZE.sub(" ", c)))
    return next(found, next(measured, clauses[0] if clauses else ""))


_ITEM_MARK = re.compile(r"^\(?(?:[ivx]+|\d|[a-h])\)\s+", re.IGNORECASE)  # "(2) Fast Speed: …" quoted as "Fast Speed: …"
_SIZE = re.compile(r"\b\d+(?:\.\d+)?\s?(?:[KMBT]\b|(?:thousand|million|billion)\b)(?:\s+parameters)?", re.IGNORECASE)


# A clause split from its sentence that opens with a conjunction ("but also confirm its better deployment efficiency")
# has no subject of its own: quoted first, it reads as a fragment
_CONTINUES = re.compile(r"(?:but|while|whereas)\b", re.IGNORECASE)


# "We present Redco, a lightweight tool …", "we propose LightMamba that co-designs …", "this paper introduces …"
_GERUNDS = {"proposing": "propose", "presenting": "present", "introducing": "introduce", "developing": "develop",
            "designing": "design", "describing": "describe", "devising": "devise"}  # fmt: skip
_WE_VERB = re.compile(
    rf"\b(?:we|this (?:paper|work))\s+(?:(?:also|then|further|first|here)\s+)?({'|'.join(_GERUNDS.values())})s?\s+",
    re.I,
)
_BY_VERB = re.compile(rf"\b({'|'.join(_GERUNDS)})\s+", re.I)  # "We fill in this blank, presenting …"
_NAMED = re.compile(r"^([A-Z][\w.+-]*(?:\s+[A-Z0-9][\w.+-]*)*),?\s+(?:(an?|the)\s+|(that|which)\s+)?", re.S)
# A clause ends at the first of these after CLAUSE_MIN words, outside parentheses and lists: what follows adds a
# second idea ("…, thereby …", "…, and efficiently schedules …"), not a list's last item ("A, B, and C").
_CLAUSE_END = re.compile(r",\s+(?=(?:and|which|thereby|while|as well as|allowing|enabling|resulting)\b)|;\s+")
CLAUSE_MIN = 5
LIST_ITEM_WORDS = 3
APPROACH_WORDS = 35  # a sentence quoted whole must be shorter; one with too few words says nothing
QUOTE_MIN = 8


def _clause(text: str) -> str:
    """The text up to where a second idea starts, without its final punctuation."""
    for end in _CLAUSE_END.finditer(text):
        before = text[: end.start()]
        in_list = text[end.end() :].startswith("and") and "," in before and (
            len(before.rsplit(",", 1)[1].split()) <= LIST_ITEM_WORDS)  # fmt: skip
        if len(before.split()) >= CLAUSE_MIN and before.count("(") == before.count(")") and not in_list:
            text = before
            break
    return text.strip().rstrip(",;:.")


def _approach_clause(sentences: Sequence[str], who: str, name: str) -> str:
    """How a paper goes about its problem, from the sentences of its approach cell, quoted: 'Redco [2] is “a
    lightweight tool …”', 'AccLLM [1] designs “a dedicated FPGA-based accelerator …”', or the sentence whole; '' when
    the cell is silent or its sentences are too long to quote in a clause. What the sentence names is the paper's
    `name` only when it is written so: "We present Moonlight, a 3B/16B-parameter MoE model …" of the paper the request
    calls Muon gives 'Muon [1] presents “Moonlight, a …”', not 'is “a 3B/16B-parameter MoE model …”'."""
    for sentence in sentences:
        found = _WE_VERB.search(sentence) or _BY_VERB.search(sentence)
        if not found:
            continue
        verb = _GERUNDS.get(found.group(1).lower(), found.group(1).lower())
        rest = sentence[found.end() :]
        named = _NAMED.match(rest)
        if named and (named.group(2) or named.group(3)) and compact(name) in compact(named.group(1)):
            # "Redco, a lightweight tool …" → is “a lightweight tool …”; "LightMamba that co-designs …" → “co-designs …”
            quote = _clause(rest[named.end(3) if named.group(3) else named.start(2) :].lstrip())
            verb = "is" if named.group(2) else ""
        else:
            quote = _clause(rest)
            verb += "s"
        if len(quote.split()) > APPROACH_WORDS:  # "a training strategy: 1) … 2) … 3) …" → "a training strategy"
            quote = quote.split(": ")[0]
        if 3 <= len(quote.split()) <= APPROACH_WORDS:
            return f"{who} {verb} “{quote}”".replace("  ", " ")
    whole = (_clause(s) for s in sentences)
    first = next((s for s in whole if QUOTE_MIN <= len(s.split()) <= APPROACH_WORDS and not s.endswith(":")), "")
    return f"{who}: “{first}”" if first else ""


# A gain stated as a factor or a percentage ("1.70x", "2.4×", "2-6x", "up to 23%"), with the words around it that say
# what was gained: speed ("speedup", "faster", "throughput", "acceleration") or memory ("memory" with "reduce",
# "savings", "less"). Other figures (energy, cost, accuracy, utilisation) are not ranked: they are rarely comparable.
_FACTOR = re.compile(
    r"(?:(?P<upto>up to|over|more than)\s+)?(?:\d+(?:\.\d+)?\s*(?:x|×)?\s*(?:[-–~]|to)\s*)?(?P<value>\d+(?:\.\d+)?)"
    r"\s*(?:(?P<times>x\b|×|times\b|-fold\b|fold\b)|(?P<percent>%))",
    re.IGNORECASE,
)
_GAIN_OF = {
    "speed-up": re.compile(r"\b(?:speed-?ups?|faster|throughput|accelerations?|speed)\b", re.I),
    "memory saving": re.compile(r"\bmemory\b", re.I),
}
_OTHER = re.compile(r"\b(?:energy|power|cost|costs|accuracy|MFU|FLOPs|area|success|parameters|dollar|watt|longer)\b")
_SAVING = re.compile(r"\b(?:reduc\w*|sav\w*|less|lower|fewer|cut\w*)\b", re.I)
_AFTER_END = re.compile(r"[,;:.]\s|\s(?:and|while|whereas|but|with)\s")
_BEFORE_START = re.compile(r".*(?:[;:.]\s|,\s(?:and|while|whereas|but)\s)", re.S)
GAIN_WINDOW = 5  # words after a figure (or, when they name nothing, before it) that say what it measures


def gains(text: str) -> dict[str, tuple[float, str]]:
    """The largest speed-up and memory saving a text states, each as a factor (a 23% gain is 1.23, a 60% saving
    2.5) with the figure as written: {'speed-up': (1.7, '1.70x')}.

    What a figure measures is read in the words after it up to the end of its clause ('22.4x faster prefill speed
    and …'), else in those before it back to the start of its clause when no other figure stands there ('speedups of
    up to 2x'). A percentage followed by 'of' is a share ('52% of theoretical peak'), not a gain."""
    found: dict[str, tuple[float, str]] = {}
    last: str | None = None  # the kind of the figure before, for one listed after it
    matches = list(_FACTOR.finditer(text))
    for k, match in enumerate(matches):
        tail = text[match.end() : matches[k + 1].start() if k + 1 < len(matches) else len(text)]
        cut = _AFTER_END.search(tail)
        after = " ".join((tail[: cut.start()] if cut else tail).split()[:GAIN_WINDOW])
        head = text[matches[k - 1].end() if k else 0 : match.start()]
        opened = _BEFORE_START.match(head)
        before = head[opened.end() :] if opened else (head if k == 0 else "")
        before = " ".join(before.split()[-GAIN_WINDOW:])
        if match.group("percent") and re.match(r"\s*of\b", tail):
            continue
        listed = last if re.fullmatch(r"\W*(?:and|or)?\W*", before) and k else None  # "up to 2x and 2.2x"
        last = None
        for context in (after, before):
            kinds = [kind for kind, words in _GAIN_OF.items() if words.search(context)] or ([listed] if listed else [])
            if _OTHER.search(context) or not kinds:
                if context.strip():
                    break  # the words name something else
                continue
            kind, value = kinds[0], float(match.group("value"))
            saving = kind == "memory saving"
            if saving and not _SAVING.search(f"{before} {after}"):
                break
            if match.group("percent"):
                if value >= 100:
                    break
                value = 1 / (1 - value / 100) if saving else 1 + value / 100
            if kind not in found or value > found[kind][0]:
                found[kind] = (value, match.group(0).strip())
            last = kind
            break
    return found


def _largest_gains(rows: Sequence[Row], cite: dict[str, str]) -> list[str]:
    """'Of the speed-ups stated, the largest is 1.70x by 2BP [3], against up to 23% by Zero Bubble [2]': per kind of
    gain that two papers or more state, the largest first; each is against its own baseline, which the sentence
    says."""
    stated: dict[str, list[tuple[float, str, str]]] = {}
    for row in rows:
        text = " ".join(dict.fromkeys(c.text for c in row.cells.values() if c.text != NOT_STATED and not c.same_as))
        for kind, (value, figure) in gains(text).items():
            stated.setdefault(kind, []).append((value, figure, cite[row.paper_id]))
    out = []
    for kind, found in stated.items():
        if len(found) < 2:
            continue
        found.sort(key=lambda f: -f[0])
        (_, figure, who), rest = found[0], found[1:]
        others = join_names([f"{f} by {w}" for _, f, w in rest])
        out.append(f"Of the {kind}s stated, the largest is {figure} by {who}, against {others} (each against its own "
                   "baseline).")  # fmt: skip
    return out


def _stitch(pieces: Sequence[str], positions: Sequence[int]) -> str:
    """Verbatim sentences joined as they stand in the abstract: adjacent ones by a space, others by ' … '."""
    out = pieces[0]
    for k in range(1, len(pieces)):
        out += (" " if positions[k] == positions[k - 1] + 1 else " … ") + pieces[k]
    return out


def acronyms(text: str) -> list[str]:
    """Words with two capitals or more ("LoRA", "FPGA", "MLLMs", "GPipe"), those in capitals only when short (not
    "ENERGY")."""
    words = re.findall(r"[A-Za-z]+", text)
    return [w for w in words if sum(c.isupper() for c in w) >= 2 and (not w.isupper() or len(w) <= 5)]


def join_names(items: Sequence[str], conjunction: str = "and") -> str:
    """'A', 'A and B', 'A, B and C'."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conjunction} " + items[-1]
