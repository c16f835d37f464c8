"""Citations: parse and normalise markers, renumber them, and verify each claim against its source.

Pure functions: no I/O, no models. Similarity comes in as an optional callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.models import Citation, Claim, Paper
from rag.text import ENDS_IN_ABBREVIATION, LINKS, coined, content_words, names, numbers, paper_words, without_links

# A claim is supported when enough of its content words are in one sentence of the cited abstract
# (or the abstract as a whole), every number it states is in that abstract, and, with an embedder,
# the best sentence is semantically close.
SUPPORT_OVERLAP = 0.5
SUPPORT_SIMILARITY = 0.55

Similarity = Callable[[str, Sequence[str]], list[float]]

_FULLWIDTH = str.maketrans({"【": "[", "】": "]", "［": "[", "］": "]", "〔": "[", "〕": "]"})
# [1], [1, 2], [1-3], [^1], [Source 1], [source: 2], [Paper 3], [1†L2]
_MARKER = re.compile(
    r"\[\s*(?:\^|(?:sources?|papers?|refs?|ref\.)\s*:?\s*)?(\d+(?:\s*(?:,|;|-|–|and)\s*\d+)*)\s*(?:†[^\]]*)?\]",
    re.IGNORECASE,
)
_CANONICAL = re.compile(r"\[(\d+)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[(\"'*#-])|\n+")


@dataclass(frozen=True)
class Source:
    """A numbered source as shown to the model: a paper and its sentences."""

    n: int
    paper: Paper
    sentences: tuple[str, ...]


def _expand(group: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", group):
        if not part:
            continue
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            lo, hi = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            out += list(range(lo, hi + 1)) if 0 < hi - lo < 20 else [lo, hi]
        else:
            out.append(int(part))
    return out


def normalise_markers(text: str) -> str:
    """Rewrite every citation style a model may produce as canonical `[n]` markers."""
    text = text.translate(_FULLWIDTH)
    return _MARKER.sub(lambda m: "".join(f"[{n}]" for n in _expand(m.group(1))), text)


def parse_markers(text: str) -> list[int]:
    """Marker numbers in order of appearance (after normalisation), repeats included."""
    return [int(n) for n in _CANONICAL.findall(normalise_markers(text))]


def renumber(text: str, valid: set[int]) -> tuple[str, dict[int, int]]:
    """Drop markers that point to no source and number the rest from 1 in order of first appearance.

    Returns the new text and the mapping old number → new number.
    """
    mapping: dict[int, int] = {}

    def replace(match: re.Match[str]) -> str:
        old = int(match.group(1))
        if old not in valid:
            return ""
        mapping.setdefault(old, len(mapping) + 1)
        return f"[{mapping[old]}]"

    out = _CANONICAL.sub(replace, normalise_markers(text))
    out = re.sub(r"(\[\d+\])(?:\1)+", r"\1", out)  # [1][1] → [1]
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
    out = re.sub(r"[ \t]{2,}", " ", out)
    return out.strip(), mapping


def split_claims(text: str) -> list[Claim]:
    """Sentences of an answer with the markers each carries; markers after the full stop count too."""
    text = re.sub(r"([.!?])\s*((?:\[\d+\])+)", r" \2\1", text)  # "foo. [1]" → "foo [1]."
    pieces: list[str] = []
    for piece in _SENTENCE_END.split(text):
        if pieces and ENDS_IN_ABBREVIATION.search(pieces[-1].rstrip()):
            pieces[-1] = f"{pieces[-1].rstrip()} {piece.strip()}"
        else:
            pieces.append(piece)
    claims = []
    for piece in pieces:
        piece = piece.strip()
        if not piece or not re.search(r"[A-Za-z0-9]", _CANONICAL.sub("", piece)):
            continue
        cites = list(dict.fromkeys(int(n) for n in _CANONICAL.findall(piece)))
        claims.append(Claim(text=piece, citations=cites))
    return claims


def strip_markers(text: str) -> str:
    return re.sub(r"\s+", " ", _CANONICAL.sub("", text)).strip()


# Words that frame an answer rather than state anything: "The answer to this question is: [1]." claims nothing.
_FRAMING = content_words(
    "answer answers question questions source sources abstract abstracts paper papers based information provided "
    "following according given context text mentioned says states reference references cited citation"
)


def has_content(claim: str) -> bool:
    """Whether a sentence states something: two content words beyond framing words and links."""
    return len(content_words(without_links(strip_markers(claim))) - _FRAMING) >= 2


def _invented(plain: str, source: Source) -> bool:
    """A link, or a name, the claim states and the source does not contain."""
    text = f"{source.paper.title} {' '.join(source.sentences)} {source.paper.url or ''}".lower()
    if any(url.rstrip(".,;)").lower() not in text for url in LINKS.findall(plain)):
        return True
    return any(name.lower() not in text for name in names(without_links(plain)) if coined(name))


def support(claim: str, source: Source, similarity: Similarity | None = None) -> tuple[float, str]:
    """How well one source supports a claim (0 to 1), and its best supporting sentence.

    A claim that states no content, or a figure, a link or a coined name its source does not contain, scores 0."""
    plain = strip_markers(claim)
    words = content_words(plain)
    if not words or not source.sentences or not has_content(plain):
        return 0.0, source.sentences[0] if source.sentences else ""
    claim_numbers = numbers(without_links(plain))
    abstract_numbers = numbers(" ".join(source.sentences) + " " + source.paper.title)
    if claim_numbers - abstract_numbers or _invented(plain, source):
        return 0.0, _best_by_overlap(words, source.sentences)[1]
    overlap, best = _best_by_overlap(words, source.sentences)
    whole = len(words & paper_words(source.paper.title + " " + " ".join(source.sentences))) / len(words)
    score = max(overlap, 0.8 * whole)
    if similarity is not None:
        sims = similarity(plain, source.sentences)
        i = max(range(len(sims)), key=sims.__getitem__)
        if sims[i] >= SUPPORT_SIMILARITY:
            score = max(score, min(1.0, sims[i]) * 0.5 + overlap * 0.5 + 0.25)
            best = best if overlap >= SUPPORT_OVERLAP else source.sentences[i]
    return round(min(score, 1.0), 3), best


def _best_by_overlap(words: set[str], sentences: Sequence[str]) -> tuple[float, str]:
    scored = [(len(words & paper_words(s)) / len(words), s) for s in sentences]
    return max(scored, key=lambda x: x[0])


def verify(
    answer: str, sources: Sequence[Source], similarity: Similarity | None = None
) -> tuple[str, list[Claim], list[Citation]]:
    """Renumber markers, drop invalid ones, and check each claim against the sources it cites.

    Returns the cleaned answer, its claims with `supported` set, and one citation per cited source
    carrying the sentence that best supports the claims citing it.
    """
    by_n = {s.n: s for s in sources}
    text, mapping = renumber(answer, set(by_n))
    source_of = {new: by_n[old] for old, new in mapping.items()}
    claims = split_claims(text)
    best_quote: dict[int, tuple[float, str]] = {}
    for claim in claims:
        scores = []
        for n in claim.citations:
            score, quote = support(claim.text, source_of[n], similarity)
            scores.append(score)
            if score > best_quote.get(n, (-1.0, ""))[0]:
                best_quote[n] = (score, quote)
        claim.support = max(scores, default=0.0)
        claim.content = has_content(claim.text)
        claim.supported = claim.content and bool(claim.citations) and claim.support >= SUPPORT_OVERLAP
    citations = [
        Citation(
            n=n,
            paper_id=source_of[n].paper.paper_id,
            title=source_of[n].paper.title,
            url=source_of[n].paper.url,
            quote=best_quote.get(n, (0.0, source_of[n].sentences[0] if source_of[n].sentences else ""))[1],
            score=best_quote.get(n, (0.0, ""))[0],
            supported=all(c.supported for c in claims if n in c.citations),
        )
        for n in sorted(source_of)
    ]
    return text, claims, citations


@dataclass
class Gated:
    """A model's text after the gate: only its supported sentences, or nothing and why."""

    text: str  # markers renumbered by first appearance; "" when the text fails
    claims: list[Claim]
    citations: list[Citation]
    why: str = ""
    removed: int = 0  # sentences dropped from a text that passed


def gate(text: str, sources: Sequence[Source], similarity: Similarity | None = None) -> Gated:
    """Verify a model's text and keep it only if it holds up: it states something, some sentence is supported, and
    at most a third of its sentences are not. Of a text that passes, the unsupported sentences are dropped."""
    clean, claims, citations = verify(text, sources, similarity)
    stated = [c for c in claims if c.content]
    unsupported = [c for c in stated if not c.supported]
    if not stated:
        return Gated("", [], [], "it states nothing a source could support")
    if len(unsupported) == len(stated):
        return Gated("", [], [], "no sentence of it has support in the cited abstracts")
    if 3 * len(unsupported) > len(stated):
        return Gated("", [], [], f"{len(unsupported)} of its {len(stated)} sentences have no support in the abstracts")
    kept = [c for c in claims if c.supported]
    if len(kept) == len(claims):
        return Gated(clean, claims, citations)
    # NOTE: the verified text is numbered by first appearance; number it as the sources are before verifying again.
    by_paper = {s.paper.paper_id: s.n for s in sources}
    original = {c.n: by_paper[c.paper_id] for c in citations}
    again = _CANONICAL.sub(lambda m: f"[{original.get(int(m.group(1)), 0)}]", " ".join(c.text for c in kept))
    removed = len(claims) - len(kept)
    clean, claims, citations = verify(again, sources, similarity)
    return Gated(clean, claims, citations, removed=removed)
