"""Answering: the offline extractive engine, the LLM engine, refusal, and the shared verification."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag import prompts
from rag.citations import SUPPORT_OVERLAP, Source, support, verify
from rag.config import Settings
from rag.embed import embed_query, embed_texts
from rag.index import count_tokens
from rag.llm import LLM, LLMError
from rag.retrieve import Retriever
from rag.store import Chunk
from rag.text import asks_for_quantity, content_words, has_figure, stem
from rag.types import Answer, Claim, SearchHit

log = logging.getLogger(__name__)

# Evidence thresholds, tuned on eval/dev.jsonl (see BENCHMARKS.md).
ANSWERABLE = 0.50  # best sentence score below this: the abstracts don't answer
SELECT_MARGIN = 0.10  # keep sentences within this of the best one
MAX_SENTENCES = 4
MAX_WORDS = 150
MMR_LAMBDA = 0.75

_ANAPHORA = re.compile(r"\b(them|those|these|they|it|its|their|which of|the same|such)\b", re.IGNORECASE)
_GENERIC = {stem(w) for w in ("many", "much", "number", "report", "reported", "achieve", "give", "paper", "abstract")}


@dataclass
class Turn:
    """One earlier question of a conversation and the papers its answer used."""

    question: str
    paper_ids: list[str] = field(default_factory=list)


@dataclass
class Evidence:
    """A scored sentence of a retrieved paper."""

    chunk: Chunk
    source: int
    score: float
    lexical: float
    similarity: float


def _words(text: str) -> set[str]:
    return content_words(text)


def contextualise(question: str, history: Sequence[Turn]) -> tuple[str, list[str]]:
    """The retrieval query for a follow-up, and the papers it may refer back to."""
    if not history:
        return question, []
    last = history[-1]
    follow_up = bool(_ANAPHORA.search(question)) or len(_words(question)) <= 3
    if not follow_up:
        return question, []
    return f"{question} {last.question}", list(last.paper_ids)


class Answerer:
    """Answers questions over one index with either engine; both end in the same verification."""

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.settings = settings

    # --- evidence ---------------------------------------------------------------------------

    def gather(
        self, question: str, k: int, history: Sequence[Turn] = ()
    ) -> tuple[list[SearchHit], list[Source], list[Evidence]]:
        """Retrieve papers, number them as sources, and score every sentence they contain."""
        query, earlier = contextualise(question, history)
        hits = self.retriever.search(query, k=max(k, len(earlier)))
        if earlier:
            # NOTE: "which of them ..." means the papers of the last answer; put those first.
            known = {h.paper_id: h for h in hits}
            first = [known.get(pid) or self._hit(pid) for pid in earlier if pid in self.retriever.papers]
            hits = [h for h in first if h] + [h for h in hits if h.paper_id not in set(earlier)]
            hits = hits[: max(k, len(earlier))]
        if not hits:
            return [], [], []
        chunks = self.retriever.store.chunks_of([h.paper_id for h in hits])
        by_paper: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_paper.setdefault(chunk.paper_id, []).append(chunk)
        sources = [
            Source(n, self.retriever.papers[h.paper_id], tuple(c.text for c in by_paper.get(h.paper_id, [])))
            for n, h in enumerate(hits, 1)
        ]
        vector = embed_query(self.retriever.embedder, question)
        evidence = self._score(question, hits, by_paper, vector)
        return hits, sources, evidence

    def _hit(self, paper_id: str) -> SearchHit:
        return SearchHit(paper_id=paper_id, title=self.retriever.papers[paper_id].title, score=0.0)

    def _score(
        self, question: str, hits: Sequence[SearchHit], by_paper: dict[str, list[Chunk]], vector: np.ndarray
    ) -> list[Evidence]:
        q_words = _words(question)
        wants_figure = asks_for_quantity(question)
        top = max((h.score for h in hits), default=1.0) or 1.0
        out = []
        for n, hit in enumerate(hits, 1):
            prior = hit.score / top
            for chunk in by_paper.get(hit.paper_id, []):
                sim = float(chunk.embedding @ vector) if chunk.embedding is not None else 0.0
                s_words = _words(chunk.text)
                lexical = len(q_words & s_words) / len(q_words) if q_words else 0.0
                score = 0.55 * sim + 0.25 * lexical + 0.20 * prior
                if wants_figure and has_figure(chunk.text):
                    score += 0.12
                out.append(Evidence(chunk, n, score, lexical, sim))
        return sorted(out, key=lambda e: e.score, reverse=True)

    def answerable(self, question: str, evidence: Sequence[Evidence], sources: Sequence[Source]) -> bool:
        """Whether the best evidence answers the question (and states a figure when one is asked)."""
        if not evidence or evidence[0].score < ANSWERABLE:
            return False
        if not asks_for_quantity(question):
            return True
        best = evidence[0]
        title_words = _words(sources[best.source - 1].paper.title)
        focus = _words(question) - title_words - _GENERIC
        for ev in evidence[:6]:
            if has_figure(ev.chunk.text) and ev.score >= ANSWERABLE and (not focus or focus & _words(ev.chunk.text)):
                return True
        return False

    # --- extractive engine ------------------------------------------------------------------

    def select(self, question: str, evidence: Sequence[Evidence]) -> list[Evidence]:
        """Best sentences by MMR: relevant, not redundant, within the word budget."""
        if not evidence:
            return []
        best = evidence[0].score
        pool = [e for e in evidence if e.score >= best - SELECT_MARGIN][:20]
        chosen: list[Evidence] = []
        words = 0
        if asks_for_quantity(question):
            figure = next((e for e in pool if has_figure(e.chunk.text)), None)
            if figure:
                chosen.append(figure)
                words += len(figure.chunk.text.split())
        while pool and len(chosen) < MAX_SENTENCES:
            def mmr(e: Evidence) -> float:
                if not chosen or e.chunk.embedding is None:
                    return e.score
                redundancy = max(float(e.chunk.embedding @ c.chunk.embedding) for c in chosen if c.chunk.embedding is not None)
                return MMR_LAMBDA * e.score - (1 - MMR_LAMBDA) * redundancy

            candidate = max((e for e in pool if e not in chosen), key=mmr, default=None)
            if candidate is None:
                break
            pool.remove(candidate)
            n_words = len(candidate.chunk.text.split())
            if chosen and (words + n_words > MAX_WORDS or mmr(candidate) < MMR_LAMBDA * best - 0.2):
                continue
            chosen.append(candidate)
            words += n_words
        # NOTE: read paper by paper, in the order of each paper's best sentence, sentences in abstract order.
        rank = {}
        for e in chosen:
            rank.setdefault(e.source, len(rank))
        return sorted(chosen, key=lambda e: (rank[e.source], e.chunk.position))

    def extractive(self, question: str, k: int | None = None, history: Sequence[Turn] = ()) -> Answer:
        """Answer by quoting the sentences that answer the question, verbatim, each with its citation."""
        k = k or self.settings.top_k
        hits, sources, evidence = self.gather(question, k, history)
        if not self.answerable(question, evidence, sources):
            return self.refusal(question, hits, "extractive")
        chosen = self.select(question, evidence)
        paragraphs: list[list[str]] = []
        last = None
        for e in chosen:
            if e.source != last:
                paragraphs.append([])
                last = e.source
            paragraphs[-1].append(f"{e.chunk.text.rstrip()} [{e.source}]")
        text = "\n\n".join(" ".join(p) for p in paragraphs)
        answer = self.finish(question, text, sources, hits, engine="extractive")
        answer.unanswered = self.unanswered_parts(question, evidence)
        if answer.unanswered:
            answer.answer += "\n\n" + " ".join(f"The abstracts do not answer: {part}" for part in answer.unanswered)
        return answer

    def unanswered_parts(self, question: str, evidence: Sequence[Evidence]) -> list[str]:
        """The parts of a multi-part question no retrieved sentence speaks to."""
        parts = [p.strip(" ,;?") for p in re.split(r"\?\s+|;\s+|,?\s+and (?=(?:how|what|which|why|when|where|who|does|do|is|are|can)\b)", question) if p.strip(" ,;?")]
        if len(parts) < 2:
            return []
        missing = []
        for part in parts:
            words = _words(part) - _GENERIC
            if not words:
                continue
            covered = max((len(words & _words(e.chunk.text)) / len(words) for e in evidence[:15]), default=0.0)
            if covered < 0.34:
                missing.append(part + "?")
        return missing if len(missing) < len(parts) else []

    # --- LLM engine -------------------------------------------------------------------------

    def pack(self, question: str, sources: Sequence[Source], history: str, budget: int) -> tuple[str, int]:
        """Fence numbered sources into the prompt, as many whole abstracts as the token budget allows."""
        blocks: list[str] = []
        used = count_tokens(question) + count_tokens(history)
        kept = 0
        for source in sources:
            body = " ".join(source.sentences)
            block = f"[{source.n}] {source.paper.title}\n<<<SOURCE {source.n}\n{body}\nSOURCE {source.n}>>>"
            cost = count_tokens(block)
            if used + cost > budget:
                break
            blocks.append(block)
            used += cost
            kept += 1
        return "\n\n".join(blocks), kept

    def llm_stream(self, question: str, k: int | None = None, history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        """Stream the model's answer, then yield the verified Answer (extractive fallback on failure)."""
        k = k or self.settings.top_k
        hits, sources, evidence = self.gather(question, k, history)
        if not evidence or evidence[0].score < ANSWERABLE:
            # NOTE: nothing relevant was retrieved, so there is nothing the model may cite.
            yield self.refusal(question, hits, f"llm:{self.settings.llm_model}")
            return
        system, user = prompts.load("answer_system"), prompts.load("answer_user")
        budget = self.settings.llm_context_tokens - self.settings.llm_max_tokens - count_tokens(system.text) - 64
        past = "".join(f"Earlier question: {t.question}\n" for t in history[-3:])
        packed, kept = self.pack(question, sources, past, budget)
        sources = sources[:kept]
        messages = [
            {"role": "system", "content": system.render()},
            {"role": "user", "content": user.render(history=past + ("\n" if past else ""), sources=packed, question=question)},
        ]
        llm = LLM(self.settings)
        pieces: list[str] = []
        try:
            for piece in llm.stream(messages):
                pieces.append(piece)
                yield piece
        except LLMError as exc:
            fallback = self.extractive(question, k, history)
            fallback.warnings.insert(0, f"{exc}; answered offline with the extractive engine instead")
            fallback.usage = llm.usage.as_dict()
            yield fallback
            return
        text = "".join(pieces).strip()
        if not text or prompts.CANNOT_ANSWER.lower().rstrip(".") in text.lower():
            answer = self.refusal(question, hits, f"llm:{llm.model}")
        else:
            answer = self.finish(question, text, sources, hits, engine=f"llm:{llm.model}", attribute=True)
        answer.usage = llm.usage.as_dict()
        answer.prompt = {"system": system.sha, "user": user.sha, "name": "answer"}
        yield answer

    # --- shared -----------------------------------------------------------------------------

    def similarity(self) -> object:
        embedder = self.retriever.embedder

        def sim(claim: str, sentences: Sequence[str]) -> list[float]:
            vectors = embed_texts(embedder, [claim, *sentences])
            return [float(v @ vectors[0]) for v in vectors[1:]]

        return sim

    def finish(
        self, question: str, text: str, sources: Sequence[Source], hits: Sequence[SearchHit], engine: str,
        attribute: bool = False,
    ) -> Answer:  # fmt: skip
        """Verify citations; with `attribute`, cite uncited claims where one source clearly supports them."""
        warnings: list[str] = []
        similarity = self.similarity() if attribute else None
        if attribute:
            text, added = self._attribute(text, sources)
            if added:
                warnings.append(f"{added} sentence(s) had no valid citation; the verifier attached the supporting source")
        clean, claims, citations = verify(text, sources, similarity)  # type: ignore[arg-type]
        flagged = [c for c in claims if not c.supported]
        if flagged:
            warnings.append(f"{len(flagged)} of {len(claims)} sentence(s) are not supported by the cited abstracts")
        cited = {c.paper_id for c in citations}
        return Answer(
            question=question,
            answer=clean,
            engine=engine,
            citations=citations,
            claims=claims,
            related=[h for h in hits if h.paper_id not in cited],
            warnings=warnings,
        )

    def _attribute(self, text: str, sources: Sequence[Source]) -> tuple[str, int]:
        from rag.citations import normalise_markers, parse_markers, split_claims

        valid = {s.n for s in sources}
        out, added = [], 0
        for claim in split_claims(normalise_markers(text)):
            if not (set(parse_markers(claim.text)) & valid):
                scored = [(support(claim.text, s)[0], s.n) for s in sources]
                score, n = max(scored, default=(0.0, 0))
                if score >= SUPPORT_OVERLAP:
                    claim = Claim(text=f"{claim.text.rstrip('.')} [{n}].", citations=[n])
                    added += 1
            out.append(claim.text)
        return " ".join(out), added

    def refusal(self, question: str, hits: Sequence[SearchHit], engine: str) -> Answer:
        related = ", ".join(f"“{h.title}”" for h in hits[:3])
        text = prompts.CANNOT_ANSWER + (f" The closest papers are {related}." if related else " The index is empty.")
        return Answer(question=question, answer=text, refused=True, engine=engine, related=list(hits))


def ask_stream(
    question: str, retriever: Retriever, settings: Settings, k: int | None = None, history: Sequence[Turn] = ()
) -> Iterator[str | Answer]:
    """Text pieces as they come (LLM engine), then the final verified Answer."""
    question = question.strip()
    answerer = Answerer(retriever, settings)
    if not question:
        yield Answer(question="", answer="Ask a question about the indexed papers.", refused=True)
        return
    if settings.engine == "llm":
        if not settings.llm_configured:
            answer = answerer.extractive(question, k, history)
            answer.warnings.insert(0, "no LLM configured (set OPENAI_API_KEY or OPENAI_BASE_URL); answered offline")
            yield answer
            return
        yield from answerer.llm_stream(question, k, history)
        return
    yield answerer.extractive(question, k, history)
