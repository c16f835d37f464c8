"""Review drafts: gather the papers relevant to a topic, group them into themes, cite them, report coverage."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from rag import prompts
from rag.citations import Source, verify
from rag.compare import ASPECTS, NOT_STATED, CellFiller, join_names, system_name
from rag.config import Settings
from rag.embed import embed_query, embed_texts
from rag.llm import LLM, LLMError
from rag.models import Paper
from rag.retrieve import Retriever
from rag.store import Chunk
from rag.themes import cluster, distinctive_terms, heading

log = logging.getLogger(__name__)

# Relevance, tuned on eval/review.jsonl (grid over weights and cut-offs): a paper's score is a weighted sum
# of z-scores (over the whole index) of the hybrid search score, the cosine to the topic, and the cosine to
# the centroid of the best few papers (pseudo-relevance feedback). Cut-offs are fractions of the range
# between the index median and the best paper, so they adapt to each topic.
SEARCH_POOL = 100
FEEDBACK_PAPERS = 5
WEIGHTS = (2.0, 0.5, 0.5)  # search score, topic cosine, feedback cosine
CITE_CUTOFF = 0.45
RELEVANT_CUTOFF = 0.35
MAX_CITED = 30
DUPLICATE_SIMILARITY = 0.97
OFF_THEME_SIMILARITY = 0.35
MAX_THEMES = 5

Reason = Literal["below threshold", "duplicate", "off-theme"]


class Section(BaseModel):
    """One section of the draft: a heading and cited text."""

    heading: str
    text: str
    paper_ids: list[str] = Field(default_factory=list)


class Reference(BaseModel):
    """A numbered entry of the reference list."""

    n: int
    paper_id: str
    title: str
    url: str | None = None
    year: int | None = None
    authors: list[str] = Field(default_factory=list)


class CoverageItem(BaseModel):
    """A paper found relevant: whether the draft cites it, and if not, why not."""

    paper_id: str
    title: str
    score: float
    cited: bool
    n: int | None = None
    reason: Reason | None = None
    detail: str = ""


class Coverage(BaseModel):
    """Which relevant papers the draft cites and which it leaves out, with the thresholds used."""

    relevant: list[CoverageItem] = Field(default_factory=list)
    cited: list[str] = Field(default_factory=list)
    left_out: list[CoverageItem] = Field(default_factory=list)
    indexed: int = 0
    thresholds: dict[str, float] = Field(default_factory=dict)


class ReviewDraft(BaseModel):
    """A literature-review draft, as `rag review --json` prints it."""

    topic: str
    title: str
    markdown: str = ""
    outline: list[str] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)
    coverage: Coverage = Field(default_factory=Coverage)
    engine: str = "extractive"
    warnings: list[str] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    prompt: dict[str, str] = Field(default_factory=dict)


@dataclass
class _Scored:
    paper: Paper
    score: float
    vector: np.ndarray


def _z(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


class Reviewer:
    """Drafts reviews over one index with either engine."""

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.settings = settings
        papers, vectors = retriever.store.all_papers(with_embeddings=True)
        self.papers = papers
        self.vectors = vectors if vectors is not None else np.zeros((0, 0), dtype=np.float32)
        self.filler = CellFiller(lambda texts: embed_texts(retriever.embedder, texts))

    # --- gathering ------------------------------------------------------------------------------

    def relevance(self, topic: str) -> tuple[list[_Scored], float, float]:
        """Every paper with its relevance score (best first), and the relevant and cite cut-offs."""
        if not self.papers:
            return [], 0.0, 0.0
        hits = {h.paper_id: h.score for h in self.retriever.search(topic, k=SEARCH_POOL)}
        fused = np.asarray([hits.get(p.paper_id, 0.0) for p in self.papers], dtype=np.float32)
        query = embed_query(self.retriever.embedder, topic)
        cosine = self.vectors @ query
        top = np.argsort(-fused)[:FEEDBACK_PAPERS]
        centroid = self.vectors[top].mean(axis=0)
        feedback = self.vectors @ (centroid / max(float(np.linalg.norm(centroid)), 1e-12))
        w_search, w_topic, w_feedback = WEIGHTS
        score = w_search * _z(fused) + w_topic * _z(cosine) + w_feedback * _z(feedback)
        floor, best = float(np.median(score)), float(score.max())
        cite = floor + CITE_CUTOFF * (best - floor)
        relevant = floor + RELEVANT_CUTOFF * (best - floor)
        order = np.argsort(-score)
        scored = [_Scored(self.papers[i], round(float(score[i]), 3), self.vectors[i]) for i in order]
        return scored, relevant, cite

    def select(self, topic: str) -> tuple[list[_Scored], list[CoverageItem], dict[str, float]]:
        """The papers to cite, the relevant ones left out (with reasons), and the thresholds."""
        scored, relevant_cut, cite_cut = self.relevance(topic)
        cited: list[_Scored] = []
        left: list[CoverageItem] = []
        seen_titles: dict[str, str] = {}
        for item in (s for s in scored if s.score >= relevant_cut):
            paper = item.paper
            key = re.sub(r"\W+", " ", paper.title.lower()).strip()
            twin = seen_titles.get(key) or next(
                (c.paper.title for c in cited if float(c.vector @ item.vector) >= DUPLICATE_SIMILARITY), None
            )
            if twin:
                left.append(self._left(item, "duplicate", f"duplicate of “{twin}”"))
            elif item.score < cite_cut or len(cited) >= MAX_CITED:
                left.append(
                    self._left(
                        item, "below threshold", f"score {item.score:.2f} below the citing cut-off {cite_cut:.2f}"
                    )
                )
            else:
                cited.append(item)
                seen_titles[key] = paper.title
        if len(cited) >= 3:
            keep = []
            for item in cited:
                closest = max(float(item.vector @ o.vector) for o in cited if o is not item)
                if closest < OFF_THEME_SIMILARITY:
                    left.append(
                        self._left(
                            item, "off-theme", f"unlike the other cited papers (closest similarity {closest:.2f})"
                        )
                    )
                else:
                    keep.append(item)
            cited = keep
        thresholds = {"relevant": round(relevant_cut, 3), "cite": round(cite_cut, 3)}
        return cited, sorted(left, key=lambda c: -c.score), thresholds

    @staticmethod
    def _left(item: _Scored, reason: Reason, detail: str) -> CoverageItem:
        return CoverageItem(
            paper_id=item.paper.paper_id, title=item.paper.title, score=item.score, cited=False, reason=reason,
            detail=detail,
        )  # fmt: skip

    # --- drafting -------------------------------------------------------------------------------

    def review(self, topic: str) -> ReviewDraft:
        """The draft: title, outline, one cited section per theme, references and coverage."""
        from rag.export import review_markdown

        topic = topic.strip()
        draft = ReviewDraft(topic=topic, title=_title(topic))
        if not topic:
            draft.warnings.append("give a topic to review")
            draft.markdown = review_markdown(draft)
            return draft
        cited, left, thresholds = self.select(topic)
        groups = self.themes(cited)
        names = self.theme_names(groups)
        chunks = self.retriever.store.chunks_of([c.paper.paper_id for c in cited])
        by_paper: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_paper.setdefault(chunk.paper_id, []).append(chunk)
        numbers: dict[str, int] = {}
        for group in groups:
            for item in group:
                numbers.setdefault(item.paper.paper_id, len(numbers) + 1)
        llm = LLM(self.settings) if self.settings.engine == "llm" and self.settings.llm_configured else None
        if self.settings.engine == "llm" and llm is None:
            draft.warnings.append("no LLM configured (set OPENAI_API_KEY or OPENAI_BASE_URL); drafted offline")
        if llm is not None:
            draft.engine = f"llm:{llm.model}"
            try:
                names = self._llm_names(llm, groups) or names
            except LLMError as exc:
                draft.warnings.append(f"{exc}; theme names are the distinctive terms instead")
        sections = [self.introduction(topic, groups, names, numbers)]
        for group, name in zip(groups, names, strict=True):
            section = None
            if llm is not None:
                try:
                    section = self._llm_section(llm, topic, name, group, by_paper, numbers, draft)
                except LLMError as exc:
                    draft.warnings.append(f"{exc}; section “{name}” is extractive")
            sections.append(section or self.extractive_section(name, group, by_paper, numbers))
        if llm is not None:
            draft.usage = llm.usage.as_dict()
            draft.prompt = {"system": prompts.load("review_system").sha, "user": prompts.load("review_user").sha,
                            "name": "review"}  # fmt: skip
        draft.sections = sections
        draft.outline = [s.heading for s in sections]
        draft.references = [
            Reference(n=n, paper_id=p.paper_id, title=p.title, url=p.url, year=p.year, authors=p.authors)
            for n, p in sorted((numbers[c.paper.paper_id], c.paper) for c in cited)
        ]
        draft.coverage = Coverage(
            relevant=sorted(
                [
                    CoverageItem(
                        paper_id=c.paper.paper_id,
                        title=c.paper.title,
                        score=c.score,
                        cited=True,
                        n=numbers[c.paper.paper_id],
                    )
                    for c in cited
                ]
                + left,
                key=lambda c: -c.score,
            ),
            cited=[c.paper.paper_id for c in sorted(cited, key=lambda c: numbers[c.paper.paper_id])],
            left_out=left,
            indexed=len(self.papers),
            thresholds=thresholds,
        )
        if not cited:
            draft.warnings.append("no indexed paper is relevant enough to this topic; try broader words")
        draft.markdown = review_markdown(draft)
        return draft

    def themes(self, cited: Sequence[_Scored]) -> list[list[_Scored]]:
        """Cited papers grouped by embedding clusters, biggest theme first, best paper first within each."""
        if not cited:
            return []
        vectors = np.stack([c.vector for c in cited])
        labels = cluster(vectors, max_k=min(MAX_THEMES, max(1, len(cited) // 3)))
        groups = [[c for c, label in zip(cited, labels, strict=True) if label == k] for k in sorted(set(labels))]
        return [sorted(g, key=lambda c: -c.score) for g in groups if g]

    def theme_names(self, groups: Sequence[Sequence[_Scored]]) -> list[str]:
        """Offline names: the terms that set each theme apart from the others and from the rest of the index."""
        inside = {c.paper.paper_id for g in groups for c in g}
        background = [f"{p.title}. {p.abstract}" for p in self.papers if p.paper_id not in inside]
        docs = [[f"{c.paper.title}. {c.paper.abstract}" for c in g] for g in groups]
        names = [heading(terms[:2]) for terms in distinctive_terms(docs, background)]
        return _unique(names)

    @staticmethod
    def introduction(
        topic: str, groups: Sequence[Sequence[_Scored]], names: Sequence[str], numbers: dict[str, int]
    ) -> Section:
        total = sum(len(g) for g in groups)
        if not total:
            return Section(heading="Introduction", text=f"No indexed paper is relevant enough to “{topic}”.")
        themes = "; ".join(
            f"{name} ({len(g)} paper{'s' if len(g) != 1 else ''}: {_markers(numbers[c.paper.paper_id] for c in g)})"
            for name, g in zip(names, groups, strict=True)
        )
        text = (
            f"This draft reviews {total} indexed paper{'s' if total != 1 else ''} on {topic[0].lower() + topic[1:]}, "
            f"in {len(groups)} theme{'s' if len(groups) != 1 else ''}: {themes}."
        )
        return Section(heading="Introduction", text=text, paper_ids=[c.paper.paper_id for g in groups for c in g])

    def extractive_section(
        self, name: str, group: Sequence[_Scored], by_paper: dict[str, list[Chunk]], numbers: dict[str, int]
    ) -> Section:
        """Verbatim approach and result sentences of each paper, each with its citation."""
        filler = self.filler
        aspects = [ASPECTS["approach"], ASPECTS["evaluation and reported results"]]
        names = [f"{system_name(c.paper.title) or c.paper.title} [{numbers[c.paper.paper_id]}]" for c in group]
        lead = f"This theme covers {join_names(names)}." if len(group) > 1 else ""
        paragraphs = [lead] if lead else []
        for item in group:
            n = numbers[item.paper.paper_id]
            cells = filler.fill(n, by_paper.get(item.paper.paper_id, []), aspects)
            quotes = [c.quote for c in cells.values() if c.text != NOT_STATED and c.quote]
            if not quotes and by_paper.get(item.paper.paper_id):
                quotes = [by_paper[item.paper.paper_id][0].text]
            sentences = [_cite(q, n) for quote in quotes for q in _SENTENCES.split(quote.replace(" … ", "\n")) if q]
            paragraphs.append(" ".join(sentences))
        return Section(
            heading=name, text="\n\n".join(p for p in paragraphs if p), paper_ids=[c.paper.paper_id for c in group]
        )

    # --- LLM engine -----------------------------------------------------------------------------

    def _llm_names(self, llm: LLM, groups: Sequence[Sequence[_Scored]]) -> list[str]:
        template = prompts.load("theme_name")
        names = []
        for group in groups:
            titles = "\n".join(f"- {c.paper.title}" for c in group)
            reply = llm.complete([{"role": "user", "content": template.render(titles=titles)}], max_tokens=24)
            name = reply.strip().splitlines()[0].strip(" #*\"'.") if reply.strip() else ""
            if not name or len(name.split()) > 10:
                return []
            names.append(name)
        return _unique(names)

    def _llm_section(
        self, llm: LLM, topic: str, name: str, group: Sequence[_Scored], by_paper: dict[str, list[Chunk]],
        numbers: dict[str, int], draft: ReviewDraft,
    ) -> Section | None:  # fmt: skip
        """Prose for one theme, verified like answers; None when the model's text cites nothing valid."""
        system, user = prompts.load("review_system"), prompts.load("review_user")
        sources = [
            Source(i, c.paper, tuple(ch.text for ch in by_paper.get(c.paper.paper_id, [])))
            for i, c in enumerate(group, 1)
        ]
        blocks = "\n\n".join(
            f"[{s.n}] {s.paper.title}\n<<<SOURCE {s.n}\n{' '.join(s.sentences)}\nSOURCE {s.n}>>>" for s in sources
        )
        messages = [
            {"role": "system", "content": system.render()},
            {"role": "user", "content": user.render(topic=topic, theme=name, sources=blocks)},
        ]
        text = llm.complete(messages).strip()
        embedder = self.retriever.embedder

        def similarity(claim: str, sentences: Sequence[str]) -> list[float]:
            vectors = embed_texts(embedder, [claim, *sentences])
            return [float(v @ vectors[0]) for v in vectors[1:]]

        clean, claims, citations = verify(text, sources, similarity)
        if not citations:
            draft.warnings.append(f"the model's section “{name}” cited no source; it is extractive")
            return None
        flagged = [c for c in claims if not c.supported]
        if flagged:
            draft.warnings.append(
                f"section “{name}”: {len(flagged)} of {len(claims)} sentence(s) are not supported by their sources"
            )
        local = {c.n: numbers[c.paper_id] for c in citations}
        clean = re.sub(r"\[(\d+)\]", lambda m: f"[{local.get(int(m.group(1)), int(m.group(1)))}]", clean)
        return Section(heading=name, text=clean, paper_ids=[c.paper.paper_id for c in group])


_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[A-Z])|\n")


def _markers(numbers: Iterable[int]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def _title(topic: str) -> str:
    return f"{topic[:1].upper() + topic[1:]}: a literature review" if topic else "Literature review"


def _cite(sentence: str, n: int) -> str:
    """A verbatim sentence with its citation placed before the final full stop."""
    text = sentence.strip()
    end = text[-1] if text and text[-1] in ".!?" else "."
    return f"{text.rstrip('.!?').rstrip()} [{n}]{end}"


def _unique(names: Sequence[str]) -> list[str]:
    """Names made distinct by numbering repeats ('Other work', 'Other work (2)')."""
    out: list[str] = []
    for name in names:
        candidate, k = name, 2
        while candidate in out:
            candidate, k = f"{name} ({k})", k + 1
        out.append(candidate)
    return out
