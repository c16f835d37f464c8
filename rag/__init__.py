"""paper-rag: cited answers, comparisons and review drafts over a corpus of paper abstracts.

`import rag` is cheap; the functions below load the pipeline on first use:
`rag.ask(question)`, `rag.ask_stream(question)`, `rag.compare(request)`, `rag.review(topic)`,
`rag.search(query)`, `rag.papers()`, `rag.ingest_paths(paths)`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ask", "ask_stream", "compare", "get_retriever", "ingest_paths", "papers", "review", "search", "topic_map"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rag import api

        return getattr(api, name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
