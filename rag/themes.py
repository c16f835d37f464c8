"""Themes: cluster paper embeddings, name each cluster by its distinctive terms, and project papers to 2-D."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Collection, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from rag.text import STOPWORDS, stem

log = logging.getLogger(__name__)

# A word, hyphenated or not; a name with a dot inside stays whole ("ML.ENERGY", "LLM.int8": cut at the dot, a review
# named a theme "ENERGY benchmark"), though not "e.g.", whose parts are single letters.
TERM_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9]*(?:-[a-zA-Z0-9]+|(?<=[a-zA-Z0-9]{2})\.[a-zA-Z0-9]{2,})*\b"
# A term takes the word before it when its papers write that word before it this often (whole_phrase). Not tuned: read
# off the 34 dev review topics' theme names (BENCHMARKS.md, sixteenth session).
WHOLE_PHRASE_SHARE = 0.75


def cluster(vectors: np.ndarray, max_k: int = 6, clusters: int | None = None, min_k: int = 2) -> np.ndarray:
    """Cluster labels for unit-length vectors: k-means, with `clusters` clusters when given, else their number
    picked by cosine silhouette (min_k..max_k).

    Fewer than four vectors make one cluster; labels are renumbered by cluster size, largest first.
    """
    n = len(vectors)
    if n < 4 or max_k < 2:
        return np.zeros(n, dtype=int)
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best: tuple[float, np.ndarray] | None = None
    top = min(max_k, n - 1)
    for k in [min(clusters, n - 1)] if clusters else range(min(max(2, min_k), top), top + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(vectors)
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(vectors, labels, metric="cosine"))
        if best is None or score > best[0]:
            best = (score, labels)
    if best is None:
        return np.zeros(n, dtype=int)
    order = [label for label, _ in Counter(best[1].tolist()).most_common()]
    remap = {old: new for new, old in enumerate(order)}
    return np.asarray([remap[label] for label in best[1]], dtype=int)


_TERM = re.compile(TERM_PATTERN)


def terms_of(text: str) -> list[str]:
    """The terms of a text: its lower-cased words of TERM_PATTERN, stop words left out, and each pair of them that
    follow each other once the stop words are out (as scikit-learn's CountVectorizer reads n-grams)."""
    words = [w for w in _TERM.findall(text.lower()) if w not in STOPWORDS]
    return words + [f"{a} {b}" for a, b in pairwise(words)]


def term_counter() -> Any:
    """Counts the `terms_of` each document."""
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(analyzer=terms_of)


def distinctive_terms(
    groups: Sequence[Sequence[str]],
    background: Sequence[str] = (),
    top: int = 3,
    exclude: Collection[str] = (),
    vocabulary: Collection[str] | None = None,
) -> list[list[str]]:
    """Per group of documents, its most distinctive terms: TF-IDF of the group's text, with document
    frequencies over the groups' documents and `background` (the rest of the corpus), so words most
    documents use score low.

    Terms are unigrams and bigrams, shown in their most frequent spelling. A term whose every word stems
    into `exclude` (say, the words of a review's topic) is skipped; terms that share a stem ('LLM', 'LLMs',
    'LLM inference') count once; with `vocabulary`, a term must be in it (say, the terms of paper titles,
    which read like headings, unlike 'achieve zero' or 'values').
    """
    documents = [d for g in groups for d in g] + list(background)
    if not any(d.strip() for d in documents):
        return [[] for _ in groups]
    vectorizer = term_counter()
    try:
        present = vectorizer.fit_transform(documents).toarray() > 0
    except ValueError:  # NOTE: only stop words in every document
        return [[] for _ in groups]
    vocab = vectorizer.get_feature_names_out()
    counts = vectorizer.transform([" ".join(g) for g in groups]).toarray().astype(float)
    doc_counts = [
        vectorizer.transform(list(g)).toarray() > 0 if g else np.zeros((0, len(vocab)), dtype=bool) for g in groups
    ]
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    # NOTE: document frequency over every paper, so words most abstracts use ('performance') weigh little.
    idf = np.log(len(documents) / np.maximum(present.sum(axis=0), 1))
    scores = tf * idf
    excluded = set(exclude)
    out = []
    for i, group in enumerate(groups):
        # NOTE: a theme's name should hold for several of its papers, not one paper's jargon.
        spread = doc_counts[i].sum(axis=0) if len(group) else np.zeros(len(vocab))
        needed = 2 if len(group) >= 3 else 1
        ranked = [j for j in np.argsort(-scores[i]) if spread[j] >= needed and scores[i, j] > 0]
        chosen: list[str] = []
        best: dict[str, float] = {}
        for j in ranked:
            term = str(vocab[j])
            if term_stems(term) <= excluded or (vocabulary is not None and term not in vocabulary):
                continue
            clash = next((c for c in chosen if term_stems(term) & term_stems(c)), None)
            if clash is None:
                if len(chosen) < top:
                    chosen.append(term)
                    best[term] = scores[i, j]
            elif " " in term and " " not in clash and scores[i, j] >= 0.5 * best[clash]:
                # NOTE: "zero bubble" says more than "zero" when it is nearly as distinctive.
                chosen[chosen.index(clash)] = term
                best[term] = scores[i, j]
        out.append([whole_phrase(surface_form(t, group), group, vocabulary) for t in chosen])
    return out


_PHRASE_END = {"for", "with", "via", "in", "on", "using", "and", "or", "of", "from", "to", "at", "by", "through",
               "towards", "toward", "as", "is", "are", "beyond", "without", "under", "across", "into"}  # fmt: skip


# A copula and what it says of the subject, up to the next preposition ("is scalable" in "Muon is Scalable for LLM
# Training")
_ENDS = "|".join(sorted(_PHRASE_END))
_PREDICATE = re.compile(rf"\b(?:is|are|was|were|be)\b(?:\s+(?!(?:{_ENDS})\b)\S+)*")


def vocabulary_of(texts: Sequence[str]) -> set[str]:
    """The noun phrases of the texts (titles, say) of one or two words, lower-cased as distinctive_terms counts them:
    the words that end a title's phrase (at its end, at punctuation or before a preposition), alone and with the word
    before them. 'language models', 'models' and 'speculative decoding', not 'large language', 'large' or 'llms
    scratch': a title's phrase ends with its head noun. A word before 'and' or 'or' is kept only with the word
    before it ('visual and language' gives no 'visual')."""
    vocabulary: set[str] = set()
    for text in texts:
        # NOTE: "GPU/TPUs" is no phrase; a dot ends one only where no word goes on ("ML.ENERGY Benchmark")
        for segment in re.split(r"[:;,?!()\[\]/]|\.(?![a-z0-9])|\s[-–—]\s", text.lower()):
            # NOTE: what "is" says of the subject is no phrase ("Muon is Scalable …" named a theme "Scalable")
            segment = _PREDICATE.sub(" ", segment)
            words = re.findall(TERM_PATTERN, segment)
            for i, word in enumerate(words):
                following = words[i + 1] if i + 1 < len(words) else None
                if word in STOPWORDS or (following and following not in _PHRASE_END):
                    continue
                if following not in ("and", "or"):  # NOTE: "Visual and Language Models": an adjective, alone
                    vocabulary.add(word)
                if i and words[i - 1] not in STOPWORDS:
                    vocabulary.add(f"{words[i - 1]} {word}")
                    if i > 1 and words[i - 2] not in STOPWORDS:  # NOTE: "machine learning engineering" (whole_phrase)
                        vocabulary.add(f"{words[i - 2]} {words[i - 1]} {word}")
    return vocabulary


def whole_phrase(form: str, docs: Sequence[str], vocabulary: Collection[str] | None = None) -> str:
    """A two-word term with the word its documents nearly always write before it, when that makes a phrase of the
    vocabulary: 'learning engineering' → 'machine learning engineering', 'Vision Therapy' → 'Machine Vision
    Therapy'. Terms are one or two words; a title's phrase may be three. A single word stays one: made a phrase, it
    would outrank the phrases that name a theme (theme_name)."""
    if " " not in form:
        return form
    words = r"\s+".join(re.escape(w) for w in form.split())
    pattern = re.compile(r"(?:\b([A-Za-z][A-Za-z0-9-]*)\s+)?\b" + words + r"\b", re.IGNORECASE)
    before = [m.group(1) for d in docs for m in pattern.finditer(d)]
    found = Counter(b.lower() for b in before if b and b.lower() not in STOPWORDS)
    if len(before) < 2 or not found:
        return form
    word, count = found.most_common(1)[0]
    longer = f"{word} {form.lower()}"
    if count < WHOLE_PHRASE_SHARE * len(before) or (vocabulary is not None and longer not in vocabulary):
        return form
    # NOTE: the word as the papers spell it, lower-cased unless an acronym or CamelCase ("Machine" → "machine", "KV")
    spelled = Counter(b for b in before if b and b.lower() == word).most_common(1)[0][0]
    return f"{spelled.lower() if spelled[1:] == spelled[1:].lower() else spelled} {form}"


def term_stems(term: str) -> set[str]:
    """The stems of a term's words and of the parts of hyphenated ones ('On-device LLM' → {'device', 'llm'})."""
    words = re.findall(TERM_PATTERN, term.lower())
    return {stem(part) for word in words for part in word.split("-") if part not in STOPWORDS}


def surface_form(term: str, docs: Sequence[str]) -> str:
    """The spelling of a lower-cased term that the documents use most ('llm' → 'LLM'), as running text writes it:
    'instruction tuning' and 'KV cache', not a title's 'Instruction Tuning' and 'KV Cache', unless only titles use
    it; then a capital goes where the documents write the word in lower case ('IoT Processors' → 'IoT processors',
    but 'Vision Mamba' stays)."""
    pattern = re.compile(r"\b" + r"\s+".join(re.escape(w) for w in term.split()) + r"\b", re.IGNORECASE)
    forms = Counter(re.sub(r"\s+", " ", m.group(0)) for d in docs for m in pattern.finditer(d))
    if not forms:
        return term
    running = Counter({f: n for f, n in forms.items() if not _title_cased(f)})
    form, _ = (running or forms).most_common(1)[0]
    if not running:
        first, *rest = form.split(" ")
        written = {w for d in docs for w in re.findall(r"\b[a-z][a-z0-9-]*\b", d)}
        form = " ".join([first, *(w.lower() if w[1:] == w[1:].lower() and w.lower() in written else w for w in rest)])
    # NOTE: prefer lower case over sentence-initial capitals; keep acronyms and CamelCase.
    lower = forms.get(form.lower(), 0)
    return form.lower() if form != form.lower() and form[1:] == form[1:].lower() and lower else form


def _title_cased(form: str) -> bool:
    """Whether a phrase of several words capitalises each, as titles do ('Instruction Tuning', 'KV Cache')."""
    words = form.split(" ")
    return len(words) > 1 and all(w[:1].isupper() for w in words)


def theme_name(terms: Sequence[str]) -> str:
    """A theme's name from its distinctive terms (noun phrases of its papers' titles, best first): the best two-word
    phrase ("KV cache", "speculative decoding"), else the best word alone; never words joined ("Serving and token"),
    which is no phrase of any paper."""
    phrase = next((t for t in terms if " " in t), None)
    return heading([phrase] if phrase else list(terms[:1]))


def theme_names(ranked: Sequence[Sequence[str]]) -> list[str]:
    """Distinct names for themes, each from its distinctive terms (best first): a theme whose name is taken by an
    earlier one is named by its terms that name no other theme, and numbered only when none is left."""
    names: list[str] = []
    for terms in ranked:
        rest, name = list(terms), theme_name(terms)
        # NOTE: a name is taken when another has its words, in any number ("Language model" beside "Language models")
        while any(term_stems(name) == term_stems(n) for n in names) and rest:
            taken = set().union(*(term_stems(n) for n in names))
            rest = [t for t in rest if not term_stems(t) <= taken]
            name = theme_name(rest) if rest else name
        names.append(name)
    return unique_names(names)


def unique_names(names: Sequence[str]) -> list[str]:
    """Names made distinct by numbering repeats ('Other work', 'Other work (2)')."""
    out: list[str] = []
    for name in names:
        candidate, k = name, 2
        while candidate in out:
            candidate, k = f"{name} ({k})", k + 1
        out.append(candidate)
    return out


def heading(terms: Sequence[str]) -> str:
    """A section heading from up to three terms: 'Pipeline parallelism, bubbles and schedules'."""
    if not terms:
        return "Other work"
    words = list(terms)
    text = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return text[0].upper() + text[1:]


def place(vectors: np.ndarray, known: dict[int, tuple[float, float]]) -> np.ndarray:
    """A starting layout: papers already placed stay where they were; each new one starts beside its nearest placed
    neighbour (cosine of unit vectors)."""
    rows = np.asarray(sorted(known))
    start = np.zeros((len(vectors), 2))
    start[rows] = [known[i] for i in rows]
    for i in sorted(set(range(len(vectors))) - set(known)):
        nearest = rows[int(np.argmax(vectors[rows] @ vectors[i]))]
        start[i] = start[nearest] + 0.01 * (i % 7 - 3)  # NOTE: apart from the neighbour, or t-SNE cannot split them
    return start


def align(coords: np.ndarray, known: dict[int, tuple[float, float]]) -> np.ndarray:
    """The layout turned, scaled and moved to lie over the last one as closely as it can (orthogonal Procrustes over
    the papers both place): t-SNE keeps which papers are near which, not the map's rotation or size, and continued on
    40 papers it turned and shifted the map by 0.06 to 0.20 of its extent for the median paper, 0.01 to 0.08 once
    aligned (eleventh session)."""
    from scipy.linalg import orthogonal_procrustes

    rows = np.asarray(sorted(known))
    if len(rows) < 3:
        return coords
    last = np.array([known[i] for i in rows], dtype=float)
    here, there = coords[rows].mean(axis=0), last.mean(axis=0)
    centred = coords[rows] - here
    spread = float((centred**2).sum())
    if spread == 0:
        return coords
    rotation, scale = orthogonal_procrustes(centred, last - there)
    return np.asarray((coords - here) @ rotation * (scale / spread) + there)


def project(vectors: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """2-D coordinates for plotting: t-SNE (deterministic) for ten or more papers, PCA below that.

    With a starting layout (the last one, new papers placed by `place`), t-SNE continues from it without early
    exaggeration, so a map redrawn after a few papers were added looks like the one the reader knows."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2))
    if n < 3:
        return np.column_stack([np.arange(n, dtype=float), np.zeros(n)])
    if n < 10:
        from sklearn.decomposition import PCA

        coords: np.ndarray = PCA(n_components=2, random_state=0).fit_transform(vectors)  # sklearn is untyped
        return coords
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (n - 1) / 3))
    settled = {} if start is None else {"init": start, "early_exaggeration": 1.0, "max_iter": 250}
    options: dict[str, Any] = {"init": "pca", "max_iter": 500} | settled
    tsne: np.ndarray = TSNE(
        n_components=2, random_state=0, perplexity=perplexity, metric="cosine", **options
    ).fit_transform(vectors)
    return tsne
