"""Answering: the offline extractive engine, the LLM engine, refusal, and the shared verification."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag import grounding, prompts
from rag.citations import SUPPORT_OVERLAP, Source, gate, support, verify
from rag.compare import join_names, system_name
from rag.config import Settings
from rag.llm import LLM, LLMError
from rag.models import Answer, Citation, Claim, Paper, SearchHit, Turn
from rag.retrieve import Retriever
from rag.store import Chunk
from rag.text import (
    LIMIT_WORDS,
    announces,
    asks_for_limits,
    asks_for_link,
    asks_for_many,
    asks_for_quantity,
    coined,
    content_words,
    continues_list,
    families,
    has_figure,
    leans_on_previous,
    mentions,
    names,
    points_elsewhere,
    quantity_heads,
    states_limit,
    stem,
    system_names,
    uncontracted,
    verbs_of_names,
    without_limit_words,
    without_links,
    word_key,
)
from rag.tuned import OFF_TOPIC, PARTIAL_AT, REFUSE_AT, RELATED_UNTIL, SURE_AT, UNREPORTED

log = logging.getLogger(__name__)

# Sentence selection, tuned on eval/dev.jsonl (see BENCHMARKS.md). Whether to answer at all is rag.tuned.ANSWERABILITY.
FIGURE_BONUS = 0.12  # a question asking for a figure prefers sentences that state one
SAME_PAPER_MARGIN = 0.15  # more sentences of the best paper within this of the best score
PER_PAPER = 3
OTHER_PAPERS_MARGIN = 0.06  # other papers only when nearly as relevant
OTHER_PAPERS_MARGIN_MANY = 0.15  # "which papers ..." questions want several
MAX_SENTENCES = 4
# Papers quoted when search is unsure: every one of the first UNSURE_PAPERS whose relevance is at least UNSURE_SHARE
# of the first's. Chosen on the dev questions (scripts/fit_answer.py's figures): 0.3 and 3 quote 1.2 papers an
# answer worded like an abstract and 2.1 a newcomer's, and cite the paper asked about in 52% of the latter, not 40%.
UNSURE_PAPERS = 3
UNSURE_SHARE = 0.3
# "Which papers ..." questions want the papers: up to MANY_PAPERS, down to MANY_SHARE of the first's relevance (set by
# hand from the dev topic questions, where the fifth gold paper's relevance is often a tenth of the first's).
MANY_PAPERS = 5
MANY_SHARE = 0.1
# A sentence that opens by leaning on the one before it ("However, ...", "To address this, ...") reads badly alone.
LEANING_PENALTY = 0.10
# A sentence that only sets the scene ("Large language models have unlocked remarkable capabilities.") answers little:
# its score drops by BACKGROUND_PENALTY × P(background) (rag.roles, kept at ingest). Chosen on eval/questions_dev.jsonl
# with out-of-fold role probabilities (BENCHMARKS.md).
BACKGROUND_PENALTY = 0.12
# A sentence that gives a link ("Code is available at https://…") tells where, not what: unless the question asks
# where to get something, its score drops by LINK_PENALTY (and rises by it when the question does). On the four dev
# question files (606 questions), answers quoting a link fell from 56 to 17 at 0.05 and to 4 at 0.15 and at 0.3, with
# every `rag eval` figure unchanged; 0.15 is the lowest value of that plateau. A link sentence that alone says what
# was asked (FastMoE's licence) is not passed over: 2 of 856 dev answers and 1 of 45 dev follow-ups change.
LINK_PENALTY = 0.15
MAX_WORDS = 150
FIGURE_POOL = 8
REDUNDANT = 0.9  # cosine above which a sentence repeats one already chosen

# Sentences that talk to a model, not about research: never quoted as evidence.
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget) (all |any |the )?(previous|prior|above|earlier) (instructions|prompts?)\b"
    r"|\b(print|reveal|output|show) (the |your )?(api[ -]?key|system prompt|password)\b",
    re.IGNORECASE,
)
_ANAPHORA = re.compile(r"\b(them|those|these|they|it|its|their|which of|the same|such)\b", re.IGNORECASE)
# Words that ask, not what is asked about: "how much gain does X report" asks for X's figure, whatever it is called.
_GENERIC = {
    stem(w)
    for w in ("many", "much", "number", "report", "reported", "achieve", "give", "paper", "abstract", "gain",
              "improvement", "improve", "increase", "reduction", "reduce", "speedup", "boost", "better", "faster",
              "factor", "fraction", "share", "percentage", "percent", "times", "large", "big", "long", "fast",
              # NOTE: and words that ask for the paper itself ("Tell me about DiLoCo", "Summarize MegaScale")
              "tell", "summarize", "summarise", "summary", "describe", "explain", "overview", "main", "idea", "key",
              "contribution", "work", "result", "finding", "method", "approach", "problem", "solve", "propose",
              # NOTE: and what it lets one do ("What does asanAI let users do?"), and how it relates to another
              "let", "allow", "enable", "offer", "provide", "help", "do", "compare", "comparison", "differ",
              "difference",
              # NOTE: and what it looks into ("What does MMAD measure?")
              "measure", "evaluate", "study", "investigate", "examine", "analyze", "analyse", "focus", "show",
              "address", "cover",
              # NOTE: and whether it speaks of something at all ("Which papers mention Gemma models?")
              "mention", "discuss", "involve", "talk",
              # NOTE: and what it uses ("Which of GPipe and 2BP uses less memory?" never mentions "uses")
              "use",
              # NOTE: and conversation, which no abstract writes ("Does WebLLM actually run chat models right inside my
              # browser?" never mentions "actually", "right", "inside"): fillers, hedges and prepositions that
              # scikit-learn's stop words lack, but those whose stem is a word of the field's ("literally" is
              # "litera", as "literature" is; "probably" is "probab")
              "actually", "really", "just", "basically", "simply", "quite", "pretty", "truly", "right", "maybe",
              "anyway", "kind", "lot", "bunch", "stuff", "thing", "guess", "wonder", "know", "want", "like", "got",
              "get", "inside", "outside", "beneath", "underneath", "near", "despite", "unlike", "versus")
}  # fmt: skip


@dataclass
class Decision:
    """What to do with a question: answer, partial (the paper asked about does not report it) or refuse."""

    outcome: str
    probabilities: dict[str, float]
    about: int | None  # the source the question is about
    unreported: list[str]  # the question's words its abstract never mentions
    figure: bool = False  # whether the question asks for a figure
    also: list[int] = field(default_factory=list)  # other sources the question names ("How does A differ from B?")
    apart: bool = False  # whether the abstracts of the sources it names never mention each other
    limits: bool = False  # whether the question asks for limitations

    @property
    def named(self) -> list[int]:
        """The sources the question is about: the one, and those it also names."""
        return [self.about or 1, *self.also]

    def note(self, sources: Sequence[Source]) -> str:
        """The one sentence that opens a partial answer, or an answer from papers that never mention each other."""
        titles = " and ".join(f"“{sources[n - 1].paper.title}”" for n in self.named)
        if self.outcome == "answer":
            never = "neither mentions the other" if len(self.also) == 1 else "none mentions another"
            return f"The abstracts of {titles} do not compare them: {never}. What each reports:"
        # NOTE: said as surely as the model is: "How many pictures can LongLLaVA chew through on one GPU?" (P 0.2 to
        # 0.5 of the answerable questions it flags) was told the abstract "does not report this" over its own answer
        sure = self.probabilities.get("unreported", 1.0) >= SURE_AT
        if self.also:
            lead, verb, rest = f"The abstracts of {titles}", "do", "What they do report:"
            never = "neither mentions" if len(self.also) == 1 else "none of them mentions"
        else:
            lead, verb, rest = f"The abstract of {titles}", "does", "What it does report:"
            never = "it never mentions"
        if not sure:
            verb, rest = "may", "The closest it comes:" if not self.also else "The closest they come:"
        # NOTE: a question for a drawback is asked in a newcomer's words, which are not what is missing: "… what's the
        # catch compared with running the same model as a normal installed program?" was told WebLLM's abstract
        # "never mentions “sounds”, “handy”, “program”" (10 of the 11 dev questions for a drawback a named paper's
        # abstract states were told so; a blind judge read it as false)
        if self.limits:
            return f"{lead} {verb} not state a limitation or drawback. {rest}"
        if self.unreported:
            words = ", ".join(f"“{w}”" for w in self.unreported[:4])
            report = "not report this" if sure else "not answer this as asked"
            return f"{lead} {verb} {report}: {never} {words}. {rest}"
        if self.figure:
            return f"{lead} {verb} not state the figure asked for. {rest}"
        return f"{lead} may not answer this. {rest}"


@dataclass
class Evidence:
    """A scored sentence of a retrieved paper."""

    chunk: Chunk
    source: int
    score: float
    lexical: float
    similarity: float
    limit: bool = False  # whether the sentence states a limitation (Answerer._score)


def _words(text: str) -> set[str]:
    """Content words, and the parts of hyphenated ones: an abstract that "gang-schedules" computations speaks of
    scheduling them."""
    return content_words(text) | content_words(text.replace("-", " "))


def _text_words(text: str) -> set[str]:
    """A paper's words: its content words and their parts (_words), and the names it gives with a version, without
    it (rag.text.families: a paper on "Qwen2-VL" answers which papers use Qwen)."""
    return _words(text) | families(text)


def rarest_held(asked: set[str], weight: dict[str, float], words: set[str]) -> float:
    """Whether the words hold the rarest asked word: of words equally rare, the share they hold; 1 when nothing is
    asked. NOTE: one of them, picked by max() over the set, was picked in the set's order, which Python's string
    hashing changes from process to process: the same question was answered in one run and refused in the next."""
    if not asked:
        return 1.0
    rarest = max(weight[w] for w in asked)
    tied = [w for w in asked if weight[w] == rarest]
    return sum(w in words for w in tied) / len(tied)


def _roles(paper: Paper, chunks: Sequence[Chunk]) -> list[tuple[float, float]]:
    """P(background) and P(problem) of each of a paper's chunks, in order: its sentence's, when the chunks are the
    paper's sentences (a sentence too long for one chunk is stored in pieces; those papers get none)."""
    from rag.index import roles_of, sentences_of
    from rag.roles import COLUMNS

    if [c.text for c in chunks] != sentences_of(paper):
        return [(0.0, 0.0)] * len(chunks)
    probs = roles_of(paper)
    return [(float(b), float(p)) for b, p in probs[:, [COLUMNS.index("background"), COLUMNS.index("problem")]]]


def contextualise(question: str, history: Sequence[Turn]) -> tuple[str, list[str]]:
    """The retrieval query for a follow-up, and the papers it may refer back to."""
    if not history:
        return question, []
    last = history[-1]
    follow_up = bool(_ANAPHORA.search(question)) or len(_words(question)) <= 3
    if not follow_up:
        return question, []
    return f"{question} {last.question}", list(last.paper_ids)


_IT = re.compile(r"\b(it)(s?)\b", re.IGNORECASE)


def resolved(question: str, history: Sequence[Turn], titles: dict[str, str]) -> str:
    """A follow-up that says "it" of the one paper the last answer cited, read as if it named that paper: "What are
    its limitations?" after "What is DeMo?" reads "What are DeMo's limitations?" (it quoted another paper's "LLMs'
    limitations"). The answer then is the one the question it stands for gets."""
    cited = history[-1].paper_ids if history else []
    if len(cited) != 1 or cited[0] not in titles:
        return question
    name = system_name(titles[cited[0]]) or titles[cited[0]]
    return _IT.sub(lambda m: name + ("'s" if m[2] else ""), question)


def _title_name(question: str, source: Source) -> str | None:
    """The name the source's title leads with ("Pathways: …", "2BP: …", "asanAI: …"), when the question uses it: in
    any case when it is coined ("MLE-Bench" for "MLE-bench"), as written when it is a capitalised word ("Pathways";
    not "turbo", nor "Turbo" in "GPT-3.5-Turbo"). A title with no such name leads with its first two capitalised
    words, when the question writes them so past its first word ("Zero Bubble" of "Zero Bubble Pipeline
    Parallelism")."""
    name = system_name(source.paper.title)
    if not name:
        lead = source.paper.title.split()[:2]
        if len(lead) < 2 or not all(w[:1].isupper() and w[1:].islower() for w in lead):
            return None
        found = re.search(rf"(?<=\s){re.escape(' '.join(lead))}(?![\w-])", question)
        return " ".join(lead) if found else None
    spelled = r"[\s-]+".join(re.escape(w) for w in name.split())
    case = re.IGNORECASE if coined(name) else 0
    return name if re.search(rf"(?<![\w-]){spelled}(?![\w-])", question, case) else None


def _name_at(question: str, source: Source) -> int:
    """Where in the question the name the source's title leads with first appears (`_title_name`)."""
    name = _title_name(question, source) or ""
    return question.lower().find(name.lower().split()[0]) if name else len(question)


def _mentioned(name: str, paper: Paper) -> bool:
    pattern = re.compile(rf"(?<![\w-]){re.escape(name)}", re.IGNORECASE)
    return bool(pattern.search(paper.title) or pattern.search(paper.abstract))


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
        query, earlier = self.standalone(question, history)
        question = resolved(question, history, self.retriever.papers.titles)  # NOTE: read as it resolves
        hits = self.retriever.search(without_limit_words(query) or query, k=max(k, len(earlier)))
        if earlier:
            # NOTE: "which of them ..." means the papers of the last answer; put those first.
            known = {h.paper_id: h for h in hits}
            top = max((h.score for h in hits), default=1.0)
            first = [known.get(pid) or self._hit(pid, top) for pid in earlier if pid in self.retriever.papers]
            hits = [h for h in first if h] + [h for h in hits if h.paper_id not in set(earlier)]
            hits = hits[: max(k, len(earlier))]
        records = self.retriever.papers.fetch(h.paper_id for h in hits)  # NOTE: one read for all of them
        hits = [h for h in hits if h.paper_id in records]
        if not hits:
            return [], [], []
        chunks = self.retriever.chunks_of([h.paper_id for h in hits])
        by_paper: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_paper.setdefault(chunk.paper_id, []).append(chunk)
        sources = [
            Source(n, records[h.paper_id], tuple(c.text for c in by_paper.get(h.paper_id, [])))
            for n, h in enumerate(hits, 1)
        ]
        vector = self.retriever.query_vector(question)
        roles = {pid: _roles(records[pid], chunks) for pid, chunks in by_paper.items()}
        # NOTE: a question for papers ("Which papers report results on MME?") asks for what the name names
        naming = [] if asks_for_many(question) else [_title_name(question, s) or "" for s in sources]
        evidence = self._score(question, hits, by_paper, vector, roles, _words(" ".join(naming)))
        return hits, sources, evidence

    def standalone(self, question: str, history: Sequence[Turn]) -> tuple[str, list[str]]:
        """The retrieval query for a follow-up and the papers it may refer back to. Offline: the question joined with
        the last one. With an LLM configured: the model's standalone rewrite joined with the question, when the
        rewrite keeps a word of the conversation (a small model's wandering reply falls back to the offline query)."""
        query, earlier = contextualise(question, history)
        if query == question or self.settings.engine != "llm" or not self.settings.llm_configured:
            return query, earlier
        template = prompts.load("follow_up")
        past = "".join(f"Earlier question: {t.question}\n" for t in history[-3:])
        try:
            reply = LLM(self.settings).complete(
                [{"role": "user", "content": template.render(history=past, question=question)}], max_tokens=64
            )
        except LLMError as exc:
            log.info("follow-up rewrite failed (%s); using the offline query", exc)
            return query, earlier
        line = next((ln.strip().strip('"') for ln in reply.splitlines() if ln.strip()), "")
        line = re.sub(r"^rewritten:\s*", "", line, flags=re.IGNORECASE)
        said = _words(question) | _words(history[-1].question)
        if not line or len(line) > 2 * len(query) or not (_words(line) & said):
            return query, earlier
        return f"{line} {question}", earlier

    def _hit(self, paper_id: str, score: float) -> SearchHit:
        return SearchHit(paper_id=paper_id, title=self.retriever.papers.titles[paper_id], score=score)

    def _score(
        self, question: str, hits: Sequence[SearchHit], by_paper: dict[str, list[Chunk]], vector: np.ndarray,
        roles: dict[str, list[tuple[float, float]]], naming: set[str],
    ) -> list[Evidence]:  # fmt: skip
        # NOTE: a sentence is chosen for what the question asks, not for the names it gives its papers: "Which of
        # GPipe and 2BP uses less memory?" quoted each paper's sentences that say "GPipe" or "2BP", none on memory
        # (unless the names are all it asks about: "What does MMAD measure?")
        q_words = _words(question) - naming if _words(question) - naming - _GENERIC else _words(question)
        wants_limits = asks_for_limits(question)
        if wants_limits:  # NOTE: an abstract that states GPipe's limit never calls it a "drawback"
            q_words = q_words - LIMIT_WORDS or q_words
        weight = {w: self.retriever.word_weight(w) for w in q_words}
        total = sum(weight.values()) or 1.0
        wants_figure = asks_for_quantity(question)
        wants_link = asks_for_link(question)
        top = max((h.score for h in hits), default=1.0) or 1.0
        out = []
        for n, hit in enumerate(hits, 1):
            prior = hit.score / top
            chunks = by_paper.get(hit.paper_id, [])
            stated = set().union(*(_words(c.text) for c in chunks if not points_elsewhere(c.text)))
            for chunk, (scene, problem) in zip(
                chunks, roles.get(hit.paper_id) or [(0.0, 0.0)] * len(chunks), strict=True
            ):
                if _INSTRUCTION.search(chunk.text):
                    continue
                sim = float(chunk.embedding @ vector) if chunk.embedding is not None else 0.0
                lexical = sum(weight[w] for w in q_words & _text_words(chunk.text)) / total
                score = 0.55 * sim + 0.25 * lexical + 0.20 * prior - BACKGROUND_PENALTY * scene
                # NOTE: the problem a paper meets is a limitation of the work before it, which a question naming no
                # paper asks for ("the downsides of mixture of experts"), not of the paper a question names
                limit = states_limit(chunk.text) or (problem >= 0.5 and not naming)
                # NOTE: a limitation is often stated against what came before ("However, MoE models …"): it reads alone
                if leans_on_previous(chunk.text) and not (wants_limits and limit):
                    score -= LEANING_PENALTY
                # NOTE: unless it alone says what was asked: "… is available at https://… under Apache-2 license."
                alone = bool(q_words) and rarest_held(q_words, weight, _words(without_links(chunk.text)) - stated) == 1
                if points_elsewhere(chunk.text) and (wants_link or not alone):
                    score += LINK_PENALTY if wants_link else -LINK_PENALTY
                if wants_figure and has_figure(chunk.text):
                    score += FIGURE_BONUS
                out.append(Evidence(chunk, n, score, lexical, sim, limit))
        return sorted(out, key=lambda e: e.score, reverse=True)

    def decide(self, question: str, hits: Sequence[SearchHit], evidence: Sequence[Evidence],
               sources: Sequence[Source]) -> Decision:  # fmt: skip
        """Answer, partial answer or refusal, from two calibrated models over the question's signals.

        First: is anything indexed about it (rag.tuned.OFF_TOPIC, over retrieval signals)? Then: does the paper it
        is about report what was asked (rag.tuned.UNREPORTED, over what of the question its abstract covers)? A
        question that names an indexed paper is never flatly refused: at worst its abstract does not report it."""
        if not evidence:
            return Decision("refuse", {"off-topic": 1.0}, None, [])
        about, named, also = self.about(question, evidence, sources)
        signals = self.signals(question, hits, evidence, sources, about, named, also)
        probabilities = {"off-topic": OFF_TOPIC.probability(signals), "unreported": UNREPORTED.probability(signals)}
        if probabilities["off-topic"] >= REFUSE_AT and not named:
            outcome = "refuse"
        elif probabilities["unreported"] >= PARTIAL_AT:
            outcome = "partial"
        else:
            outcome = "answer"
        unreported = self.unreported(question, [sources[n - 1] for n in (about, *also)])
        # NOTE: "Which of GPipe and 2BP uses less memory?" was answered by a sentence of each, as if they settled it
        names = {n: _title_name(question, sources[n - 1]) or "" for n in (about, *also)}
        apart = bool(also) and not any(
            _mentioned(names[m], sources[n - 1].paper) for n in names for m in names if m != n and names[m]
        )
        limits = asks_for_limits(question)
        return Decision(outcome, probabilities, about, unreported, asks_for_quantity(question), also, apart, limits)

    def about(
        self, question: str, evidence: Sequence[Evidence], sources: Sequence[Source]
    ) -> tuple[int, bool, list[int]]:
        """The source the question is about, whether the question names it, and the other sources it names.

        The paper it names when that is the first or the answering one, or any source whose title leads with the
        name ("What accuracy did it get on MMAD?" when search ranks another benchmark first); else the answering
        paper. A question that names several papers by their titles' names is about each of them ("How does DiLoCo
        differ from DiPaCo?" was answered that DiLoCo's abstract never mentions DiPaCo)."""
        named = self.named_source(question, sources)
        if named is None or (named not in (1, evidence[0].source) and not _title_name(question, sources[named - 1])):
            return evidence[0].source, False, []  # NOTE: a name the best paper does not carry ("RISC-V", which the
            # answering one spells "RISCV")
        titled = [s.n for s in sources if _title_name(question, s)]
        if named not in titled or len(titled) < 2:
            return named, True, []
        # NOTE: in the order the question names them: "How does DiLoCo differ from DiPaCo?" speaks of DiLoCo first
        first, *others = sorted(titled, key=lambda n: _name_at(question, sources[n - 1]))
        return first, True, others

    def signals(self, question: str, hits: Sequence[SearchHit], evidence: Sequence[Evidence], sources: Sequence[Source],
                about: int, named: bool, also: Sequence[int] = ()) -> dict[str, float]:  # fmt: skip
        """Everything the answerability models read, by name (rag.tuned.SIGNALS). A question about several named
        papers (`also`) is read against all of them together."""
        about_all = (about, *also)
        paper = sources[about - 1].paper
        own = [e for e in evidence if e.source in about_all]
        q_words = _words(question)
        # NOTE: the name the question gives the paper is not what is asked; the rest of its title's words may be
        # ("What hybrid architecture does LongLLaVA adopt?" of "LongLLaVA: … via Hybrid Architecture")
        titles = [sources[n - 1].paper.title for n in about_all]
        naming = " ".join(
            n for n in names(question) if any(re.search(rf"(?<![\w-]){re.escape(n)}", t, re.I) for t in titles)
        )
        naming += "".join(f" {_title_name(question, sources[n - 1]) or ''}" for n in about_all)
        limits = asks_for_limits(question)
        asked = q_words - _words(naming) - _GENERIC - (LIMIT_WORDS if limits else set())
        weight = {w: self.retriever.word_weight(w) for w in q_words}
        total = sum(weight.values()) or 1.0
        asked_total = sum(weight[w] for w in asked) or 1.0

        def held(words: set[str]) -> float:
            """The share of the asked-for words' weight these words hold; all of it when only a name is asked
            about ("What is GPipe?")."""
            return sum(weight[w] for w in asked & words) / asked_total if asked else 1.0

        text_words = set().union(
            *(_text_words(f"{p.title} {p.abstract}") for p in (sources[n - 1].paper for n in about_all))
        )
        heads = [h for h in ([w for w in head if w not in _GENERIC] for head in quantity_heads(question)) if h]
        quantity = asks_for_quantity(question)
        figure_coverage = 1.0
        if quantity:
            with_figure = [e.chunk.text for e in own if has_figure(e.chunk.text)]
            figure_coverage = max((held(_text_words(text)) for text in with_figure), default=0.0)
        # NOTE: read as search reads the paper, with a newcomer's words for its terms: "Does WebLLM run chat models in
        # the browser?" was told WebLLM's abstract never mentions "run" and "chat" (it writes "LLM inference")
        read = held(text_words | self.everyday_words([sources[n - 1] for n in about_all]))
        in_paper = held(text_words)
        # NOTE: what is asked for ("what tokenizer", "how many GPUs") is stated when a sentence mentions it, with a
        # figure when a quantity is asked for
        stated = [any((has_figure(e.chunk.text) or not quantity) and mentions(e.chunk.text, head) for e in own)
                  for head in heads]  # fmt: skip
        if quantity and not heads:  # NOTE: "by what percentage …": any figure the paper states may be the one
            stated = [any(has_figure(e.chunk.text) for e in own)]
        if limits:  # NOTE: what is asked for is a limitation, whatever the question calls it
            stated = [any(e.limit for e in own)]
        return {
            "asked-for things the paper states": sum(stated) / len(stated) if stated else 1.0,
            "names an indexed paper": float(named),
            "named: asked-for words in the paper": read if named else 0.0,
            "named: asked-for words in its best sentence with a figure": figure_coverage if named else 0.0,
            "top relevance": hits[0].score if hits else 0.0,
            "best sentence cosine": max((e.similarity for e in own), default=0.0),
            "whole-abstract cosine": hits[about - 1].dense if about <= len(hits) else 0.0,
            "question words in the paper": sum(weight[w] for w in q_words & text_words) / total,
            "question words in no indexed paper": sum(weight[w] for w in q_words if w not in self.retriever.idf)
            / total,
            "best paper's likeness to its nearest papers": self.retriever.likeness(paper.paper_id),
            "asked-for words in the paper": in_paper,
            "asked-for words in its best sentence": max((held(_text_words(e.chunk.text)) for e in own), default=0.0),
            "asked-for words in its best sentence with a figure": figure_coverage,
            # NOTE: all of it when only a name is asked about, as `held` reads it ("Which papers use TPUs?" of Redco,
            # whose title has "GPU/TPUs")
            "rarest asked word in the paper": rarest_held(asked, weight, text_words),
            # NOTE: "How many GPUs does PipeDream use?" was answered with other papers' GPU counts
            "asks about a system name no indexed paper writes": float(bool(self.unwritten(question))),
            "asks about another name no indexed paper writes": float(
                any(not self.retriever.written(n) for n in names(question) if n not in system_names(n))
            ),
        }

    def everyday_words(self, about: Sequence[Source]) -> set[str]:
        """The everyday words for the glossary's terms these sources' abstracts use (Retriever.everyday_words)."""
        return set().union(*(self.retriever.everyday_words(s.paper.paper_id) for s in about))

    def unwritten(self, question: str) -> list[str]:
        """The names of systems the question asks about that no indexed abstract writes ("PipeDream")."""
        return [n for n in dict.fromkeys(system_names(question)) if not self.retriever.written(n)]

    def unreported(self, question: str, about: Sequence[Source]) -> list[str]:
        """The question's own words (as written) for what the abstracts of the papers it is about never mention; a
        hyphenated word is mentioned by its parts ("token-generation" by "token generation"), a name by none
        ("Mamba-2" is not "Mamba"), and the verb a name takes is how the question asks ("How does Splitwise handle
        …" never mentions "handle")."""
        text_words = set().union(*(_text_words(f"{s.paper.title} {s.paper.abstract}") for s in about))
        text_words |= self.everyday_words(about) | _GENERIC | (LIMIT_WORDS if asks_for_limits(question) else set())
        # NOTE: and as BM25 reads it, stemmed with acronyms folded: "Can ML predict a program's IPC …?" was told an
        # abstract titled "… Machine Learning …" never mentions "ML"
        indexed = set().union(*(self.retriever.indexed_words(s.paper.paper_id) for s in about))
        asking = {word_key(verb) for verb in verbs_of_names(question)}
        seen: dict[str, str] = {}
        for word in re.findall(r"[A-Za-z][\w-]*", uncontracted(question)):
            key, parts = word_key(word), set() if coined(word) else content_words(word.replace("-", " "))
            read = set(self.retriever.lexical.tokens(word)) if word.isalpha() else set()  # NOTE: not "Mamba-2"
            mentioned = (
                key in text_words | asking or (bool(parts) and parts <= text_words) or (bool(read) and read <= indexed)
            )
            if key in _words(word) and not mentioned and key not in seen:
                seen[key] = word
        return list(seen.values())

    def figures(
        self, question: str, evidence: Sequence[Evidence], sources: Sequence[Source], about: int | None = None
    ) -> list[Evidence]:
        """Sentences of the paper asked about that state a figure for the asked-for quantity."""
        about = about or self.named_source(question, sources) or evidence[0].source
        pool = [e for e in evidence if e.source == about and has_figure(e.chunk.text)][:FIGURE_POOL]
        heads = quantity_heads(question)
        if heads:
            return [e for e in pool if any(mentions(e.chunk.text, head) for head in heads)]
        focus = _words(question) - _GENERIC - {word_key(n) for n in names(question)}
        return [e for e in pool if not focus or focus & _text_words(e.chunk.text)]

    def named_source(self, question: str, sources: Sequence[Source]) -> int | None:
        """The source whose title leads with a name the question uses ("Pathways: …", "2BP: …"), else whose title
        (or, for a coined name, only abstract) carries a rare name the question uses."""
        titled = [s.n for s in sources if _title_name(question, s)]
        if len(titled) == 1:
            return titled[0]
        rare = np.log((len(self.retriever.papers) + 1) / 3.5)
        for name in names(question):
            if self.retriever.word_weight(word_key(name)) < rare:
                continue  # GPU, NVIDIA, LLaMA: names, but of no one paper
            pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.IGNORECASE)
            in_title = [s.n for s in sources if pattern.search(s.paper.title)]
            if len(in_title) == 1:
                return in_title[0]
            # NOTE: in an abstract only a coined name counts ("FastMoE", "1F1B"); "World" is any paper's word.
            in_text = [s.n for s in sources if pattern.search(s.paper.abstract)]
            if len(in_text) == 1 and coined(name):
                return in_text[0]
        return None

    # --- extractive engine ------------------------------------------------------------------

    def select(
        self, question: str, evidence: Sequence[Evidence], hits: Sequence[SearchHit] = (), named: Sequence[int] = ()
    ) -> list[Evidence]:
        """Sentences that answer: the best paper's closest few (and its figure, when one is asked),
        plus the best sentence of other papers that score nearly as well, and of each paper the question `named`.
        Redundancy is skipped."""
        if not evidence:
            return []
        best = evidence[0]
        many = asks_for_many(question)
        limits = asks_for_limits(question)
        chosen: list[Evidence] = [best]

        def fits(e: Evidence) -> bool:
            words = sum(len(c.chunk.text.split()) for c in chosen) + len(e.chunk.text.split())
            redundant = any(
                e.chunk.embedding is not None
                and c.chunk.embedding is not None
                and float(e.chunk.embedding @ c.chunk.embedding) > REDUNDANT
                for c in chosen
            )
            # NOTE: a sentence leaning on the one before it is quoted only as the best evidence itself (or a
            # limitation asked for: Answerer._score); so is a sentence that only announces a list ("We contribute in
            # three significant ways.") and a list's later item ("(II) Improving the performance with given budgets.")
            # unless a sentence just before it is quoted (LAMM's "1) …" and "2) …" have a sentence between them)
            text = e.chunk.text
            after = any(c.source == e.source and 0 < e.chunk.position - c.chunk.position <= 2 for c in chosen)
            orphan = continues_list(text) and not after
            alone = not (leans_on_previous(text) or announces(text) or orphan) or (limits and e.limit)
            return e not in chosen and words <= MAX_WORDS and not redundant and alone

        if asks_for_quantity(question):
            figure = next(iter(self.figures(question, evidence, ())), None) if quantity_heads(question) else None
            figure = figure or next((e for e in evidence if e.source == best.source and has_figure(e.chunk.text)), None)
            if figure and fits(figure):
                chosen.append(figure)
        seen = {best.source}
        for n in named:
            own = next((e for e in evidence if e.source == n and fits(e)), None)
            if n not in seen and own:
                chosen.append(own)
                seen.add(n)
        # NOTE: when search is unsure (other papers nearly as relevant as the first), each of them is quoted too:
        # a newcomer's question often fits several papers, and the reader decides. They come before more of the
        # first paper's sentences, which would otherwise spend the answer's words (BENCHMARKS.md). Each is quoted by
        # its best sentence that fits: one whose best opens "Additionally, …" was left out (10 of 884 dev answers
        # gain a paper, 6 of them gold; no dev figure falls).
        top = hits[0].score if hits else 0.0
        papers, share = (MANY_PAPERS, MANY_SHARE) if many else (UNSURE_PAPERS, UNSURE_SHARE)
        # NOTE: a question for the papers that write a name is answered by each that writes it, however weakly search
        # ranks it: "Does any paper mention OPT or BLOOM models?" quoted LLM.int8() and a paper that writes neither,
        # not Redco's "GPT-J, LLaMA, T5, and OPT" (third) or Holmes' "GPT-3, OPT, and LLaMA" (fifth). A name is read
        # so when no more papers write it than such an answer quotes ("OPT", "Mamba"; not "LLM" or "GPU")
        lexical = self.retriever.lexical

        def rare(name: str) -> bool:
            return min((lexical.document_frequency[t] for t in lexical.tokens(name)), default=0) <= MANY_PAPERS

        named_in = {*names(question), *system_names(question)}
        asked = [re.compile(rf"(?<![\w-]){re.escape(n)}(?![\w-])") for n in named_in if rare(n)]
        listing = many or not question.rstrip().endswith("?")  # NOTE: and so is a search's "XLA or MLIR compilers"
        for n, hit in enumerate(hits[: MANY_PAPERS if listing else papers], 1):
            if n in seen or top <= 0:
                continue
            own = next((e for e in evidence if e.source == n and fits(e)), None)
            if hit.score < share * top or n > papers:
                writes = [
                    e for e in evidence if e.source == n and fits(e) and any(a.search(e.chunk.text) for a in asked)
                ]
                own = writes[0] if listing and writes else None
            if own:
                chosen.append(own)
                seen.add(n)
        same = [e for e in evidence if e.source == best.source and e.score >= best.score - SAME_PAPER_MARGIN]
        for e in same:
            if len([c for c in chosen if c.source == best.source]) >= PER_PAPER:
                break
            if fits(e):
                chosen.append(e)
        margin = OTHER_PAPERS_MARGIN_MANY if many else OTHER_PAPERS_MARGIN
        for e in evidence:
            if len(chosen) >= MAX_SENTENCES + (2 if many else 0):
                break
            if e.source not in seen and e.score >= best.score - margin and fits(e):
                chosen.append(e)
                seen.add(e.source)
        # NOTE: read paper by paper, the papers the question names in its order, then in the order of each paper's best
        # sentence; sentences in abstract order.
        rank: dict[int, int] = {n: i for i, n in enumerate(n for n in named if n in seen)}
        for e in chosen:
            rank.setdefault(e.source, len(rank))
        return sorted(chosen, key=lambda e: (rank[e.source], e.chunk.position))

    def extractive(self, question: str, k: int | None = None, history: Sequence[Turn] = ()) -> Answer:
        """Answer by quoting the sentences that answer the question, verbatim, each with its citation."""
        hits, sources, evidence = self.gather(question, k or self.settings.top_k, history)
        answer = self._quote(resolved(question, history, self.retriever.papers.titles), hits, sources, evidence)
        answer.question = question
        return answer

    def _quote(
        self, question: str, hits: Sequence[SearchHit], sources: Sequence[Source], evidence: Sequence[Evidence]
    ) -> Answer:
        """The extractive answer from what was gathered for the question (a follow-up read as it resolves)."""
        decision = self.decide(question, hits, evidence, sources)
        if decision.outcome == "refuse":
            return self.refusal(question, hits, "extractive", decision)
        if decision.outcome == "partial":
            evidence = [e for e in evidence if e.source in decision.named]
        chosen = self.select(question, evidence, hits, decision.named if decision.also else ())
        paragraphs: list[list[str]] = []
        last = None
        for e in chosen:
            if e.source != last:
                paragraphs.append([])
                last = e.source
            # NOTE: a "[2]" inside a quoted abstract is escaped so it is never read as a citation.
            quoted = re.sub(r"\[(\d+)\]", r"\\[\1\\]", e.chunk.text.rstrip())
            paragraphs[-1].append(f"{quoted} [{e.source}]")
        text = "\n\n".join(" ".join(p) for p in paragraphs)
        answer = self.finish(question, text, sources, hits, engine="extractive")
        # NOTE: a source quoted twice is cited by the sentence that answers best, not the first one.
        best = {}
        for e in sorted(chosen, key=lambda e: e.score):
            best[sources[e.source - 1].paper.paper_id] = e.chunk.text
        for citation in answer.citations:
            citation.quote = best.get(citation.paper_id, citation.quote)
        if decision.outcome == "partial" or decision.apart:
            answer.partial = decision.outcome == "partial"
            answer.answer = f"{decision.note(sources)}\n\n{answer.answer}"
        if answer.partial:
            return answer
        answer.unanswered = self.unanswered_parts(question, evidence)
        if answer.unanswered:
            answer.answer += "\n\n" + " ".join(f"The abstracts do not answer: {part}" for part in answer.unanswered)
        return answer

    def unanswered_parts(self, question: str, evidence: Sequence[Evidence]) -> list[str]:
        """The parts of a multi-part question no retrieved sentence speaks to."""
        parts = [
            p.strip(" ,;?")
            for p in re.split(
                r"\?\s+|;\s+|,?\s+and (?=(?:how|what|which|why|when|where|who|does|do|is|are|can)\b)", question
            )
            if p.strip(" ,;?")
        ]
        if len(parts) < 2:
            return []
        missing = []
        for part in parts:
            words = _words(part) - _GENERIC
            if not words:
                continue
            covered = max((len(words & _text_words(e.chunk.text)) / len(words) for e in evidence[:15]), default=0.0)
            if covered < 0.34:
                missing.append(part + "?")
        return missing if len(missing) < len(parts) else []

    # --- LLM engine -------------------------------------------------------------------------

    def llm_stream(
        self, llm: LLM, question: str, k: int | None = None, history: Sequence[Turn] = ()
    ) -> Iterator[str | Answer]:
        """Stream the model's answer, then yield the verified Answer (extractive fallback on failure)."""
        k = k or self.settings.top_k
        hits, sources, evidence = self.gather(question, k, history)
        decision = self.decide(resolved(question, history, self.retriever.papers.titles), hits, evidence, sources)
        if decision.outcome == "refuse":
            # NOTE: nothing relevant was retrieved, so there is nothing the model may cite.
            yield self.refusal(question, hits, f"llm:{self.settings.llm_model}", decision)
            return
        system, user = prompts.load("answer_system"), prompts.load("answer_user")
        past = "".join(f"Earlier question: {t.question}\n" for t in history[-3:])
        sources, packed = grounding.pack(sources, grounding.source_budget(self.settings, system.text, question, past))
        messages = [
            {"role": "system", "content": system.render()},
            {
                "role": "user",
                "content": user.render(history=past + ("\n" if past else ""), sources=packed, question=question),
            },
        ]
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
        draft = "".join(pieces).strip()
        answer, why = self.gate(question, draft, sources, hits, llm.model)
        used = system
        if answer is None:
            # NOTE: one retry with a short, strict prompt (small models follow an example better than rules)
            used = prompts.load("answer_strict_system")
            messages[0] = {"role": "system", "content": used.render()}
            try:
                draft = "".join(llm.stream(messages)).strip() or draft
                answer, why = self.gate(question, draft, sources, hits, llm.model)
            except LLMError as exc:
                why = str(exc)
        if answer is not None and decision.outcome == "partial" and not answer.refused:
            answer.partial = True
            answer.answer = f"{decision.note(sources)}\n\n{answer.answer}"
        if answer is None:
            answer = self.extractive(question, k, history)
            answer.warnings.insert(
                0, f"The model's answer could not be verified against the abstracts ({why}); "
                "shown instead: sentences quoted from them. The model's draft is kept as an unverified draft.",
            )  # fmt: skip
            answer.draft = draft
        answer.usage = llm.usage.as_dict()
        answer.prompt = {"system": used.sha, "user": user.sha, "name": "answer"}
        yield answer

    def gate(self, question: str, draft: str, sources: Sequence[Source], hits: Sequence[SearchHit],
             model: str) -> tuple[Answer | None, str]:  # fmt: skip
        """The model's verified answer (rag.citations.gate), or None and why it fails. Sentences without a citation
        get the source that clearly supports them first; unsupported ones are removed from an answer that passes."""
        if not draft:
            return None, "the reply was empty"
        if prompts.CANNOT_ANSWER.lower().rstrip(".") in draft.lower():
            return None, "the model said the abstracts do not answer, though they were found relevant"
        text, added = self._attribute(draft, sources)
        checked = gate(text, sources, grounding.similarity(self.retriever.embedder))
        if checked.why:
            return None, checked.why
        answer = self._answer(question, checked.text, checked.claims, checked.citations, hits, f"llm:{model}")
        if added:
            answer.warnings.append(
                f"{added} sentence(s) had no valid citation; the verifier attached the supporting source"
            )
        if checked.removed:
            answer.warnings.append(
                f"{checked.removed} sentence(s) of the model's answer that no cited abstract supports were removed"
            )
            answer.draft = draft
        return answer, ""

    # --- shared -----------------------------------------------------------------------------

    def finish(
        self, question: str, text: str, sources: Sequence[Source], hits: Sequence[SearchHit], engine: str
    ) -> Answer:
        """Verify the citations of an answer's text and say how many sentences they do not support."""
        clean, claims, citations = verify(text, sources)
        answer = self._answer(question, clean, claims, citations, hits, engine)
        stated = [c for c in claims if c.content]
        flagged = [c for c in stated if not c.supported]
        if flagged:
            answer.warnings.append(
                f"{len(flagged)} of {len(stated)} sentence(s) are not supported by the cited abstracts"
            )
        return answer

    @staticmethod
    def _answer(question: str, text: str, claims: list[Claim], citations: list[Citation], hits: Sequence[SearchHit],
                engine: str) -> Answer:  # fmt: skip
        cited = {c.paper_id for c in citations}
        return Answer(
            question=question,
            answer=text,
            engine=engine,
            citations=citations,
            claims=claims,
            related=[h for h in hits if h.paper_id not in cited],
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

    def refusal(
        self, question: str, hits: Sequence[SearchHit], engine: str, decision: Decision | None = None
    ) -> Answer:
        """No answer; the closest papers are named only when they are close (the model is not sure it is off-topic)."""
        if not self.retriever.papers:
            return Answer(question=question, answer=f"{prompts.CANNOT_ANSWER} The index is empty.", refused=True,
                          engine=engine)  # fmt: skip
        close = decision is None or decision.probabilities.get("off-topic", 1.0) < RELATED_UNTIL
        related = list(hits) if close else []
        # NOTE: a name the question asks about that one paper only mentions ("What accuracy does MobileVLM reach?":
        # ML-Mamba compares with it) is worth pointing to, though that paper does not answer
        pointers = []
        for name in (n for n in names(question) if coined(n)):
            writers = [self._hit(pid, 0.0) for pid in self.retriever.writers(name)]
            if writers:
                pointers.append(f"“{name}” is written only in " + " and ".join(f"“{h.title}”" for h in writers) + ".")
                related = [*writers, *(h for h in related if h.paper_id not in {w.paper_id for w in writers})]
        unwritten = self.unwritten(question)
        if unwritten:
            pointers.append(f"No indexed abstract mentions {join_names([f'“{n}”' for n in unwritten])}.")
        closest = ", ".join(f"“{h.title}”" for h in hits[:3]) if close else ""
        nothing = "" if pointers else "No indexed paper is about it."
        last = f"{prompts.CLOSEST_PAPERS} {closest}." if closest else nothing
        text = " ".join(part for part in (prompts.CANNOT_ANSWER, *pointers, last) if part)
        return Answer(question=question, answer=text, refused=True, engine=engine, related=related)


def ask_stream(
    question: str, retriever: Retriever, settings: Settings, k: int | None = None, history: Sequence[Turn] = ()
) -> Iterator[str | Answer]:
    """Text pieces as they come (LLM engine), then the final verified Answer."""
    question = question.strip()
    answerer = Answerer(retriever, settings)
    if not question:
        yield Answer(question="", answer="Ask a question about the indexed papers.", refused=True)
        return
    warnings: list[str] = []
    llm = grounding.model(settings, warnings, "answered offline")
    read_as = retriever.glossed(question)
    if llm is not None:
        for item in answerer.llm_stream(llm, question, k, history):
            if isinstance(item, Answer):
                item.read_as = read_as
            yield item
        return
    answer = answerer.extractive(question, k, history)
    answer.warnings[:0] = warnings
    answer.read_as = read_as
    yield answer
