"""Our hybrid paper retrieval as a llama-index retriever and query engine, for users' llama-index pipelines."""

from __future__ import annotations

from typing import Any

from llama_index.core.llms import LLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.api import get_retriever
from rag.config import Settings, get_settings
from rag.models import Paper, SearchHit


class PaperRetriever(BaseRetriever):
    """The k papers most relevant to a query, best first: one node per paper, its text the title and abstract,
    its score our calibrated relevance (0 to 1).

    NOTE: llama-index's async `aretrieve` falls back to this synchronous search, which is local and quick."""

    def __init__(self, settings: Settings | None = None, k: int = 5) -> None:
        if k < 1:
            raise ValueError(f"PaperRetriever needs k of at least 1 paper, got k={k}.")
        super().__init__()
        self.settings = settings or get_settings()
        self.k = k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        retriever = get_retriever(self.settings)
        hits = retriever.search(query_bundle.query_str, k=self.k)
        return [NodeWithScore(node=paper_node(retriever.papers[h.paper_id], h), score=h.score) for h in hits]


def paper_node(paper: Paper, hit: SearchHit) -> TextNode:
    """A paper as a node whose id is its paper id. The LLM sees its id, year and text (title and abstract); an
    embedding model or reranker sees the text alone."""
    metadata: dict[str, Any] = {
        "paper_id": paper.paper_id,
        "title": paper.title,
        "url": paper.url,
        "year": paper.year,
        "matched_sentence": hit.best_sentence,
    }
    # NOTE: the title opens the text and the matched sentence is part of the abstract: shown again they only cost
    # tokens; a missing year would read "year: None".
    hidden = ["title", "url", "matched_sentence", *(["year"] if paper.year is None else [])]
    return TextNode(
        id_=paper.paper_id,
        text=f"{paper.title}\n\n{paper.abstract}",
        metadata=metadata,
        excluded_llm_metadata_keys=hidden,
        excluded_embed_metadata_keys=list(metadata),
    )


def query_engine(llm: LLM, settings: Settings | None = None, k: int = 5, **kwargs: Any) -> RetrieverQueryEngine:
    """A llama-index query engine that answers from the k most relevant papers with the given llama-index LLM; its
    responses' `source_nodes` carry the papers' ids. Other keyword arguments go to `RetrieverQueryEngine.from_args`.
    """
    if llm is None:
        # NOTE: without an LLM, llama-index falls back to its global Settings.llm, which builds an OpenAI client.
        raise TypeError("query_engine needs a llama-index LLM, e.g. OpenAILike(api_base=..., model=...).")
    return RetrieverQueryEngine.from_args(PaperRetriever(settings, k=k), llm=llm, **kwargs)
