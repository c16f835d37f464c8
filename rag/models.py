"""Data types shared across the pipeline; each serialises to the JSON the CLI prints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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
