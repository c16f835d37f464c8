"""Benchmarks: ingest against the raw encoder, re-ingest, search and answer latency, CLI memory, cold start, scaling.

    .venv/bin/python scripts/bench.py [--write] [--sizes 1000,10000] [--llm-url http://127.0.0.1:8099/v1]

Prints a Markdown report; `--write` puts it into BENCHMARKS.md (replacing the block of the same kind).
Everything runs in fresh temporary RAG_HOMEs; the user's index is never touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCHMARKS = ROOT / "BENCHMARKS.md"
RAG_CLI = Path(sys.executable).parent / "rag"
DEV_SET = ROOT / "eval" / "dev.jsonl"
DIM = 384
PAIRS = 9  # alternating raw encodes and ingests for the ratio
clock = time.perf_counter


# --- helpers ------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(values: Sequence[float]) -> str:
    return f"{pct(values, 50) * 1000:.1f} / {pct(values, 95) * 1000:.1f}"


def timed(fn: Callable[[], object]) -> float:
    start = clock()
    fn()
    return clock() - start


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    import torch

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(len(os.sched_getaffinity(0))),
        "ram": f"{mem_kb / 2**20:.1f} GiB",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def clean_env(home: Path) -> dict[str, str]:
    """The environment for a child: no RAG_/OPENAI_ settings of the caller, RAG_HOME set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env["RAG_HOME"] = str(home)
    env["RAG_CACHE_DIR"] = os.environ["RAG_CACHE_DIR"]  # the model's one ONNX export, shared by every run
    return env


# NOTE: a child forked from this (large) process starts with its peak RSS as ru_maxrss, so children are
# started from a small helper interpreter, which reports the real child's wall time and peak RSS.
_LAUNCH = """import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\nBENCH {time.perf_counter() - start} {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Run cmd; its wall seconds, its peak RSS in MB, and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCH, *cmd], stdout=out, stderr=err, env=env, cwd=cwd)
        out.seek(0)
        err.seek(0)
        text, log = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} exited with {proc.returncode}:\n{log[-2000:]}")
    sys.stderr.write("".join(line + "\n" for line in log.splitlines() if line.startswith("  ingest")))
    _, seconds, rss_kb = next(line for line in reversed(log.splitlines()) if line.startswith("BENCH ")).split()
    return float(seconds), int(rss_kb) / 1024, text


def dev_questions() -> list[str]:
    return [json.loads(line)["question"] for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def queries(n: int, titles: Sequence[str]) -> list[str]:
    """n search queries: the dev-set questions, then paper titles."""
    return (dev_questions() + list(titles))[:n]


# --- 168 papers, the real model -----------------------------------------------------------------


def bench_corpus(base: Path, n_queries: int, n_asks: int) -> dict[str, Any]:
    from llama_index.core.schema import MetadataMode

    from rag.api import ask, get_retriever, ingest_paths, read_paths
    from rag.config import BUNDLED_CORPUS, Settings
    from rag.embed import clear_query_cache, embed_texts, get_embedder, unload
    from rag.index import chunk_paper

    r: dict[str, Any] = {}
    settings = Settings(home=base / "warmup")
    r["first_load_s"] = timed(lambda: get_embedder(settings))  # the cache is empty: this exports to ONNX
    unload()
    r["model_load_s"] = timed(lambda: get_embedder(settings))
    r["bulk_load_s"] = timed(lambda: get_embedder(settings, bulk=True))
    embedder = get_embedder(settings, bulk=True)
    r["runtime"] = type(embedder).__name__
    papers = read_paths([BUNDLED_CORPUS])[0].papers
    r["papers"] = len(papers)

    def chunk_texts() -> list[str]:
        return [n.get_content(metadata_mode=MetadataMode.EMBED) for p in papers for n in chunk_paper(p, settings)]

    r["chunk_cold_s"] = timed(chunk_texts)
    start = clock()
    texts = chunk_texts()
    r["chunk_warm_s"] = clock() - start
    r["chunks"] = len(texts)
    # NOTE: the raw encoder is the embedder ingest uses, on the same texts, in one call, sorted by length.
    texts.sort(key=len)
    whole = sorted((f"{p.title}\n\n{p.abstract}" for p in papers), key=len)
    embed_texts(embedder, texts[:64])
    r["raw_whole_s"] = timed(lambda: embed_texts(embedder, whole))
    for_queries = get_embedder(settings)
    r["query_runtime"] = type(for_queries).__name__
    embed_texts(for_queries, texts[:64])
    r["raw_chunks_query_runtime_s"] = timed(lambda: embed_texts(for_queries, texts))

    # NOTE: raw encodes and ingests alternate, so that a slow spell of this shared machine (single runs here
    # vary by a quarter) falls on both; the ratio is the median of the pairs'.
    pairs = []
    for n in range(PAIRS):
        raw = timed(lambda: embed_texts(embedder, texts))
        settings = Settings(home=base / f"ingest{n}")
        pairs.append((raw, timed(lambda s=settings: ingest_paths([BUNDLED_CORPUS], s))))
    r["pairs"] = pairs
    r["raw_chunks_s"] = statistics.median(raw for raw, _ in pairs)
    r["ingest_s"] = statistics.median(ingest for _, ingest in pairs)
    r["ratio"] = statistics.median(ingest / raw for raw, ingest in pairs)
    r["reingest_s"] = statistics.median(timed(lambda: ingest_paths([BUNDLED_CORPUS], settings)) for _ in range(3))
    r["home"] = settings.home

    retriever = get_retriever(settings)
    qs = queries(n_queries, [p.title for p in papers])
    r["first_search_s"] = timed(lambda: retriever.search(qs[0]))
    for q in qs[:5]:
        retriever.search(q)
    clear_query_cache()  # NOTE: every measured query is embedded afresh
    r["search"] = [timed(lambda q=q: retriever.search(q)) for q in qs]
    r["n_search"] = len(qs)
    questions = dev_questions()[:n_asks]
    for q in questions[:3]:
        ask(q, settings)
    clear_query_cache()
    r["ask"] = [timed(lambda q=q: ask(q, settings)) for q in questions]
    return r


def bench_cli(home: Path, question: str, runs: int = 3) -> dict[str, Any]:
    """Cold `rag ask --json` in a fresh process each time: wall time and peak RSS."""
    times, rss = [], []
    for _ in range(runs):
        seconds, peak, out = run_child([str(RAG_CLI), "ask", question, "--json"], clean_env(home), cwd=home)
        json.loads(out)
        times.append(seconds)
        rss.append(peak)
    return {"cli_s": times, "cli_rss_mb": rss}


# --- LLM overhead -------------------------------------------------------------------------------


def bench_llm(home: Path, url: str, questions: Sequence[str], max_tokens: int) -> list[dict[str, float]]:
    """Per question: time to first token, total, time inside the LLM call, and the pipeline's own overhead."""
    import rag.answer as answer_mod
    from rag.api import ask_stream
    from rag.config import Settings

    settings = Settings(
        home=home,
        engine="llm",
        openai_base_url=url,
        llm_model="local",
        llm_context_tokens=4096,
        llm_max_tokens=max_tokens,
    )
    spans: list[tuple[float, float]] = []
    base = answer_mod.LLM

    class TimedLLM(base):  # type: ignore[misc, valid-type]
        def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None):  # type: ignore[no-untyped-def]
            start = clock()
            try:
                yield from super().stream(messages, max_tokens)
            finally:
                spans.append((start, clock()))

    answer_mod.LLM = TimedLLM
    rows = []
    try:
        for q in questions:
            spans.clear()
            start, first = clock(), None
            for item in ask_stream(q, settings):
                if isinstance(item, str) and first is None:
                    first = clock() - start
            total = clock() - start
            in_llm = sum(b - a for a, b in spans)
            rows.append(
                {
                    "ttft": first if first is not None else float("nan"),
                    "total": total,
                    "llm": in_llm,
                    "before": (spans[0][0] - start) if spans else float("nan"),
                    "after": (start + total - spans[-1][1]) if spans else float("nan"),
                }
            )
    finally:
        answer_mod.LLM = base
    return rows


# --- scaling with a stand-in encoder ------------------------------------------------------------


_WORD = re.compile(r"[a-z0-9]+")


def install_stand_in() -> None:
    """Swap the encoder for signed feature hashing of words into 384 dims, in this process only."""
    import numpy as np

    import rag.index
    import rag.retrieve

    slots: dict[str, tuple[int, float]] = {}

    def vector(text: str) -> list[float]:
        v = np.zeros(DIM, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            slot = slots.get(word)
            if slot is None:
                h = zlib.crc32(word.encode())
                slot = slots[word] = (h % DIM, 1.0 if h & 0x80000000 else -1.0)
            v[slot[0]] += slot[1]
        return (v / max(float(np.linalg.norm(v)), 1e-12)).tolist()

    class HashEmbedding:
        """Stand-in encoder (rag.embed.Embedder): no model, so the figures are the index's own cost."""

        def get_query_embedding(self, query: str) -> list[float]:
            return vector(query)

        def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> Any:
            return [vector(text) for text in texts]

    stand_in = HashEmbedding()
    rag.index.get_embedder = lambda settings, **_: stand_in  # type: ignore[assignment]
    rag.retrieve.get_embedder = lambda settings, **_: stand_in  # type: ignore[assignment]


def synthetic_corpus(n: int, path: Path, seed: int = 0) -> None:
    """JSON Lines of n papers: the 168 real ones, then recombined titles and sentences of the real corpus."""
    from rag.api import read_paths
    from rag.config import BUNDLED_CORPUS
    from rag.index import split_sentences

    papers = read_paths([BUNDLED_CORPUS])[0].papers
    rng = random.Random(seed)
    sentences = [split_sentences(p.abstract) for p in papers]
    pool = [s for ss in sentences for s in ss]
    counts = [len(ss) for ss in sentences]
    titles = [p.title.split() for p in papers]
    with path.open("w", encoding="utf-8") as f:
        for p in papers[:n]:
            f.write(json.dumps({"id": p.paper_id, "title": p.title, "abstract": p.abstract}) + "\n")
        for i in range(max(0, n - len(papers))):
            a, b = rng.choice(titles), rng.choice(titles)
            title = " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :]) + f" ({i})"
            abstract = " ".join(rng.sample(pool, rng.choice(counts)))
            f.write(json.dumps({"id": f"syn-{i}", "title": title, "abstract": abstract}) + "\n")


def worker(mode: str, home: Path, corpus: Path, n_queries: int, n_asks: int) -> dict[str, Any]:
    """One scaling step in its own process, so its peak RSS is its own."""
    install_stand_in()
    from rag.api import ask, get_retriever, ingest_paths
    from rag.config import Settings
    from rag.embed import clear_query_cache

    settings = Settings(home=home)
    if mode == "ingest":
        step = max(1, sum(1 for _ in corpus.open()) // 10)
        marks = iter(range(step, 10**9, step))
        mark = [next(marks)]

        def progress(done: int, total: int) -> None:
            if done >= mark[0]:
                print(f"  ingest {done}/{total}", file=sys.stderr, flush=True)
                mark[0] = next(marks)

        start = clock()
        report = ingest_paths([corpus], settings, progress=progress)
        ingest_s = clock() - start
        reingest_s = timed(lambda: ingest_paths([corpus], settings))
        # NOTE: ten papers more, from another file: the search snapshot is made from the last one (rag.snapshot)
        more = corpus.with_name(f"ten-more-{corpus.stem}.jsonl")
        rows = [json.loads(line) for _, line in zip(range(10), corpus.open(encoding="utf-8"), strict=False)]
        more.write_text("".join(json.dumps({**r, "id": f"more-{i}", "title": f"{r['title']} (more {i})"}) + "\n"
                                for i, r in enumerate(rows)), encoding="utf-8")  # fmt: skip
        return {"ingest_s": ingest_s, "papers": report.total_papers, "chunks": report.chunks_embedded,
                "reingest_s": reingest_s, "add_ten_s": timed(lambda: ingest_paths([more], settings))}  # fmt: skip
    retriever_s = timed(lambda: get_retriever(settings))
    retriever = get_retriever(settings)
    # NOTE: titles from the snapshot: iterating the papers would read every record, which no user command does
    qs = queries(n_queries, list(retriever.papers.titles.values())[:n_queries])
    first = timed(lambda: retriever.search(qs[0]))
    clear_query_cache()
    search = [timed(lambda q=q: retriever.search(q)) for q in qs]
    questions = dev_questions()[:n_asks]
    ask(questions[0], settings)
    clear_query_cache()
    asks = [timed(lambda q=q: ask(q, settings)) for q in questions]
    return {"open_s": retriever_s, "first_search_s": first, "search": search, "ask": asks}


def cold_cli(home: Path, runs: int = 3) -> dict[str, Any]:
    """`rag search` and `rag ask` from the shell, each in a fresh process: the real query encoder over the stand-in's
    vectors (the same dimensions), so the time is a user's, not the answer. Median of `runs`; peak RSS of each."""
    out: dict[str, Any] = {}
    for command in ("search", "ask"):
        runs_ = [run_child([str(RAG_CLI), command, dev_questions()[0], "--json"], clean_env(home), cwd=home)
                 for _ in range(runs)]  # fmt: skip
        out[f"cli_{command}_s"] = statistics.median(seconds for seconds, _, _ in runs_)
        out[f"cli_{command}_rss_mb"] = statistics.median(rss for _, rss, _ in runs_)
    return out


def bench_scale(sizes: Sequence[int], base: Path, n_queries: int, n_asks: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        print(f"scaling: {n} papers", file=sys.stderr, flush=True)
        corpus, home = base / f"synthetic-{n}.jsonl", base / f"scale-{n}"
        synthetic_corpus(n, corpus)
        common = ["--home", str(home), "--corpus", str(corpus), "--queries", str(n_queries), "--asks", str(n_asks)]
        row: dict[str, Any] = {"n": n}
        for mode in ("ingest", "query"):
            _, rss, out = run_child([sys.executable, __file__, "--worker", mode, *common], clean_env(home), cwd=base)
            row.update(json.loads(out.strip().splitlines()[-1]))
            row[f"{mode}_rss_mb"] = rss
        row |= cold_cli(home)
        rows.append(row)
    return rows


# --- report -------------------------------------------------------------------------------------


def ok(value: float, target: float) -> str:
    return "✅" if value <= target else "❌"


def report(cmd: str, m: dict[str, str], c: dict[str, Any] | None, cli: dict[str, Any] | None,
           llm: list[dict[str, float]] | None, scale: list[dict[str, Any]]) -> str:  # fmt: skip
    out = [
        f"Run {m['date']} with `{cmd}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, GPU: {m['gpu']}; Python {m['python']}, torch {m['torch']}.",  # noqa: E501 - one Markdown row
        "",
    ]
    if c:
        ratio = c["ratio"]
        each = ", ".join(f"{ingest / raw:.2f}×" for raw, ingest in c["pairs"])
        re_pct = c["reingest_s"] / c["ingest_s"] * 100
        p95_search, p95_ask = pct(c["search"], 95) * 1000, pct(c["ask"], 95) * 1000
        out += [
            f"### Bundled corpus: {c['papers']} papers, {c['chunks']} sentence chunks, MiniLM on CPU",
            "",
            "| measure | figure | target |",
            "| --- | --- | --- |",
            f"| first use of the model for queries: ONNX export into an empty cache, then load (once per machine) | {c['first_load_s']:.2f} s | |",  # noqa: E501 - one Markdown row
            f"| load of the query model ({c['query_runtime']}, once per process) / of the ingest model ({c['runtime']}) | {c['model_load_s']:.2f} s / {c['bulk_load_s']:.2f} s | |",  # noqa: E501 - one Markdown row
            f"| chunking, first call (loads the sentence splitter and tiktoken) / warm | {c['chunk_cold_s']:.2f} s / {c['chunk_warm_s']:.2f} s | |",  # noqa: E501 - one Markdown row
            f"| raw encode of the {c['chunks']} chunk texts ingest embeds (ingest's embedder, {c['runtime']}, one call; median of {len(c['pairs'])}) | {c['raw_chunks_s']:.2f} s | |",  # noqa: E501 - one Markdown row
            f"| the same with the query embedder ({c['query_runtime']}), for reference | {c['raw_chunks_query_runtime_s']:.2f} s | |",  # noqa: E501 - one Markdown row
            f"| raw encode of the {c['papers']} whole abstracts (title + abstract), for reference | {c['raw_whole_s']:.2f} s | |",  # noqa: E501 - one Markdown row
            f"| full ingest, model loaded (`rag.api.ingest_paths`, fresh index; median of {len(c['pairs'])}, each run after a raw encode) | {c['ingest_s']:.2f} s | |",  # noqa: E501 - one Markdown row
            f"| ingest / raw encode of the same texts (median of the pairs: {each}) | {ratio:.2f}× {ok(ratio, 1.1)} | ≤ 1.1× |",  # noqa: E501 - one Markdown row
            f"| unchanged re-ingest (median of 3) | {c['reingest_s']:.3f} s = {re_pct:.1f}% {ok(re_pct, 10)} | ≤ 10% |",
            f"| first search (builds BM25) | {c['first_search_s'] * 1000:.0f} ms | |",
            f"| warm search p50 / p95 ({c['n_search']} queries) | {ms(c['search'])} ms {ok(p95_search, 30)} | p95 ≤ 30 ms |",  # noqa: E501 - one Markdown row
            f"| extractive answer p50 / p95 (marginal, {len(c['ask'])} dev questions in a batch) | {ms(c['ask'])} ms {ok(p95_ask, 150)} | p95 ≤ 150 ms |",  # noqa: E501 - one Markdown row
        ]
    if cli:
        t, r = statistics.median(cli["cli_s"]), statistics.median(cli["cli_rss_mb"])
        out += [
            f'| `rag ask "…" --json` cold start, end to end (median of 3: {", ".join(f"{x:.2f}" for x in cli["cli_s"])} s) | {t:.2f} s {ok(t, 6)} | ≤ 6 s |',  # noqa: E501 - one Markdown row
            f"| peak RSS of that CLI process (median of 3) | {r:.0f} MB {ok(r, 1536)} | ≤ 1.5 GB |",
        ]
    if c or cli:
        out.append("")
    if llm:
        good = [row for row in llm if not math.isnan(row["ttft"])]
        out += [
            f"### LLM engine overhead ({len(llm)} questions, {len(good)} streamed)",
            "",
            "| measure | p50 | max |",
            "| --- | --- | --- |",
        ]
        for key, label in [("ttft", "time to first token"), ("before", "retrieval + packing before the LLM call"),
                           ("after", "verification after the stream ended"), ("llm", "inside the LLM call"),
                           ("total", "total")]:  # fmt: skip
            vals = [row[key] for row in llm if not math.isnan(row[key])]
            if vals:
                out.append(f"| {label} | {statistics.median(vals) * 1000:.0f} ms | {max(vals) * 1000:.0f} ms |")
        overhead = [row["total"] - row["llm"] for row in llm]
        out += [
            f"| pipeline overhead (total − inside the LLM call) | {statistics.median(overhead) * 1000:.0f} ms | {max(overhead) * 1000:.0f} ms |",  # noqa: E501 - one Markdown row
            "",
        ]
    if scale:
        out += [
            "### Scaling with corpus size (stand-in encoder)",
            "",
            "Synthetic papers recombine titles and sentences of the bundled corpus (the 168 real papers included). "
            "**Embeddings come from a stand-in encoder** (signed feature hashing of words into 384 dimensions, "
            "injected by patching `rag.index.get_embedder` and `rag.retrieve.get_embedder`), so these figures are the "
            "cost of chunking, Chroma, BM25 and answering alone; add the encoder's time (table above, or the GPU "
            "section) for a real ingest, and about 0.4 GB of RSS for the loaded MiniLM. Each step runs in its own process.",  # noqa: E501 - one Markdown row
            "",
            "| papers | chunks | ingest | papers/s | unchanged re-ingest | ten papers more | open index (first `get_retriever`) | first search | search p50 / p95 | answer p50 / p95 | peak RSS ingest | peak RSS query | cold `rag search` / `rag ask` from the shell (median of 3) | their peak RSS |",  # noqa: E501 - one Markdown row
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in scale:
            out.append(
                f"| {row['n']:,} | {row['chunks']:,} | {row['ingest_s']:.1f} s | {row['n'] / row['ingest_s']:.0f} | "
                f"{row['reingest_s']:.2f} s | {row.get('add_ten_s', math.nan):.2f} s | {row['open_s']:.2f} s | {row['first_search_s'] * 1000:.0f} ms | "  # noqa: E501 - one Markdown row
                f"{ms(row['search'])} ms | {ms(row['ask'])} ms | {row['ingest_rss_mb']:.0f} MB | {row['query_rss_mb']:.0f} MB | "  # noqa: E501 - one Markdown row
                f"{row['cli_search_s']:.2f} s / {row['cli_ask_s']:.2f} s | {row['cli_search_rss_mb']:.0f} / {row['cli_ask_rss_mb']:.0f} MB |"  # noqa: E501 - one Markdown row
            )
        out.append("")
        plot = plot_scale(scale)
        if plot:
            out += [f"![cost against corpus size]({plot.relative_to(ROOT)})", ""]
    return "\n".join(out)


def plot_scale(scale: list[dict[str, Any]]) -> Path | None:
    """A log-log plot of the scaling table, when matplotlib is installed (it is not a dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ns = [row["n"] for row in scale]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(ns, [row["ingest_s"] for row in scale], "o-", label="ingest (s)")
    ax.loglog(ns, [pct(row["search"], 95) for row in scale], "o-", label="search p95 (s)")
    ax.loglog(ns, [pct(row["ask"], 95) for row in scale], "o-", label="answer p95 (s)")
    ax.set_xlabel("papers")
    ax.legend()
    path = ROOT / "docs" / "bench-scaling.png"
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def write_block(block: str, text: str) -> None:
    """Replace (or append) the generated block named `block` in BENCHMARKS.md; the rest stays as written."""
    begin, end = f"<!-- bench.py:{block} begin -->", f"<!-- bench.py:{block} end -->"
    body = f"{begin}\n{text.rstrip()}\n{end}"
    current = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    updated = pattern.sub(lambda _: body, current) if pattern.search(current) else f"{current.rstrip()}\n\n{body}\n"
    BENCHMARKS.write_text(updated, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="put the report into BENCHMARKS.md")
    parser.add_argument("--sizes", default="1000,10000", help="synthetic corpus sizes for scaling ('' for none)")
    parser.add_argument("--only-scale", action="store_true", help="skip the bundled-corpus and CLI measures")
    parser.add_argument("--queries", type=int, default=100, help="search queries per measure")
    parser.add_argument("--asks", type=int, default=60, help="questions per answer-latency measure")
    parser.add_argument("--llm-url", default=None, help="OpenAI-compatible endpoint: also time the LLM engine")
    parser.add_argument("--llm-questions", type=int, default=5)
    parser.add_argument("--llm-max-tokens", type=int, default=128)
    parser.add_argument("--worker", choices=["ingest", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging_quiet()
    if args.worker:
        print(json.dumps(worker(args.worker, args.home, args.corpus, args.queries, args.asks)))
        return 0

    cmd = shlex.join([".venv/bin/python", "scripts/bench.py", *sys.argv[1:]])
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    m = machine()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        base = Path(tmp)
        os.environ["RAG_CACHE_DIR"] = str(base / "cache")
        c = cli = llm = None
        if not args.only_scale:
            c = bench_corpus(base, args.queries, args.asks)
            cli = bench_cli(c["home"], dev_questions()[0])
            if args.llm_url:
                llm = bench_llm(c["home"], args.llm_url, dev_questions()[: args.llm_questions], args.llm_max_tokens)
        scale = bench_scale(sizes, base, args.queries, args.asks)
    text = report(cmd, m, c, cli, llm, scale)
    print(text)
    if args.write:
        write_block("scale-" + "-".join(map(str, sizes)) if args.only_scale else "main", text)
    return 0


def logging_quiet() -> None:
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")


if __name__ == "__main__":
    raise SystemExit(main())
