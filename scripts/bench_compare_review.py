"""Time comparisons and review drafts offline in one process: the first comparison (role probabilities come from the
index since the tenth session), then every dev comparison request and review topic warm.

Usage: RAG_HOME=/tmp/raghome .venv/bin/python scripts/bench_compare_review.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))

from rag import api  # noqa: E402
from rag.config import get_settings  # noqa: E402


def lines(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (ROOT / "eval" / name).read_text().splitlines() if line.strip()]


def timed(call: object, *args: object) -> float:
    start = time.perf_counter()
    call(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main() -> int:
    settings = get_settings()
    api.get_retriever(settings).search("warm the search up")
    requests = [str(r["request"]) for r in lines("compare_dev.jsonl")]
    first = timed(api.compare, requests[0], settings)
    compares = [timed(api.compare, r, settings) for r in requests]
    topics = [str(r["topic"]) for name in ("review.jsonl", "review_fresh.jsonl") for r in lines(name)]
    topics += [str(r["topic"]) for r in lines("review_topics_coverage.jsonl") if not r["covered"]][:8]
    reviews = [timed(api.review, t, settings) for t in topics]
    print(f"first comparison in the process: {first * 1000:.0f} ms")
    print(f"comparison, warm, {len(compares)} dev requests: p50 {statistics.median(compares) * 1000:.0f} ms, "
          f"p95 {p95(compares) * 1000:.0f} ms")  # fmt: skip
    print(f"review draft, warm, {len(reviews)} topics (8 refused): p50 {statistics.median(reviews) * 1000:.0f} ms, "
          f"p95 {p95(reviews) * 1000:.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
