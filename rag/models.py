"""Data types shared across the pipeline; each serialises to the JSON the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from rag.errors import RagError as RagError  # NOTE: re-exported: the one error family the front doors catch


class Paper(BaseModel):
    """One paper: the unit users cite."""

    paper_id: str
    title: str
    abstract: str
    url: str | None = None
    authors: list[str] = Field(default_factory=list)
    year: int | None = None
    source: str = ""
    locator: str = ""
    # NOTE: where each sentence of the abstract starts, found at ingest (rag.index.sentences_of): reading a paper's
    # sentences then needs no sentence tokenizer, which takes seconds to import. Not part of what is shown or exported.
    sentence_starts: list[int] = Field(default_factory=list, exclude=True)
    # NOTE: per sentence, the role model's probabilities (rag.roles.COLUMNS), found at ingest: a comparison then
    # needs no model fitted, and no scikit-learn imported, before its first answer.
    sentence_roles: list[list[float]] = Field(default_factory=list, exclude=True)

    @property
    def content_hash(self) -> str:
        import hashlib

        return hashlib.sha1(f"{self.title}\n{self.abstract}".encode()).hexdigest()[:12]


class SearchHit(BaseModel):
    """A paper found for a query, with its relevance (0 to 1, from the reranker) and its best sentence."""

    paper_id: str
    title: str
    score: float
    dense: float = 0.0
    bm25: float = 0.0
    best_sentence: str = ""


class Citation(BaseModel):
    """A numbered source of an answer and the sentence of its abstract that supports the claim."""

    n: int
    paper_id: str
    title: str
    quote: str
    supported: bool = True
    score: float = 0.0
    url: str | None = None


class Claim(BaseModel):
    """One sentence of an answer, the citations it carries, and whether they support it."""

    text: str
    citations: list[int] = Field(default_factory=list)
    supported: bool = True
    support: float = 0.0
    content: bool = True  # False for a sentence that states nothing ("The answer is:"): never counted as supported


class Answer(BaseModel):
    """A cited answer, as `rag ask --json` prints it."""

    question: str
    answer: str
    refused: bool = False
    partial: bool = False  # the paper asked about was found, but its abstract does not report what was asked
    engine: str = "extractive"
    citations: list[Citation] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    related: list[SearchHit] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    unanswered: list[str] = Field(default_factory=list)
    prompt: dict[str, str] = Field(default_factory=dict)
    draft: str = ""  # the model's unverified draft, when it failed verification and the extractive answer is shown
    read_as: dict[str, str] = Field(default_factory=dict)  # everyday words of the question → the term search read


@dataclass
class Turn:
    """One earlier question of a conversation and the papers its answer used."""

    question: str
    paper_ids: list[str] = field(default_factory=list)

    @classmethod
    def after(cls, answer: Answer) -> Turn:
        """The turn a follow-up reads: the papers the answer cites, else (a refusal) the three it found closest."""
        return cls(answer.question, [c.paper_id for c in answer.citations] or [h.paper_id for h in answer.related[:3]])


# --- comparisons ---------------------------------------------------------------------------------


class Cell(BaseModel):
    """One cell of the matrix: a short statement, its citation and the verbatim supporting sentence."""

    text: str
    citations: list[int] = Field(default_factory=list)
    quote: str = ""
    origin: str = "extractive"
    same_as: str = ""  # the column of its row whose sentences this cell's are (its text points there), if any


class Row(BaseModel):
    """One paper of the comparison and its cells, keyed by aspect."""

    paper_id: str
    title: str
    name: str
    cells: dict[str, Cell]
    kind: str | None = None  # the kind of approach the request named that the paper stands for ("offloading")


class Comparison(BaseModel):
    """A comparison matrix, as `rag compare --json` prints it."""

    request: str
    aspects: list[str]
    rows: list[Row]
    synthesis: str
    citations: list[Citation] = Field(default_factory=list)
    unresolved: list[str] = Field(default_factory=list)
    engine: str = "extractive"
    warnings: list[str] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    prompt: dict[str, str] = Field(default_factory=dict)


# --- reviews -------------------------------------------------------------------------------------

Reason = Literal["below threshold", "duplicate", "off-theme"]


class Section(BaseModel):
    """One section of the draft: a heading and cited text, written by the model or stitched offline."""

    heading: str
    text: str
    paper_ids: list[str] = Field(default_factory=list)
    origin: Literal["extractive", "llm"] = "extractive"


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
    refusal: str = ""  # why nothing was drafted: the library does not cover the topic
    outline: list[str] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)
    coverage: Coverage = Field(default_factory=Coverage)
    engine: str = "extractive"
    warnings: list[str] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    prompt: dict[str, str] = Field(default_factory=dict)


# --- ingests ------------------------------------------------------------------------------------


@dataclass
class IngestReport:
    """What one ingest did, per file and in total."""

    index: str
    files: list[str] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks_embedded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    total_papers: int = 0


@dataclass
class CheckReport:
    """What `rag ingest --check` found and re-embedded."""

    index: str
    papers: int = 0
    damaged: list[str] = field(default_factory=list)
    chunks_embedded: int = 0


# --- evaluation ---------------------------------------------------------------------------------


class EvalReport(BaseModel):
    """Figures overall and per question kind (or request form), plus per-item rows."""

    file: str
    engine: str
    questions: int
    unit: str = "questions"
    metrics: dict[str, float | int | None]
    by_kind: dict[str, dict[str, float | int | None]]
    rows: list[dict[str, Any]]
