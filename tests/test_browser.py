"""End to end in a real browser: `rag app` on loopback, driven by Debian's Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = [
    {
        "title": "<img src=x onerror=alert(1)> Hostile title",
        "abstract": "Payload <script>alert(1)</script> in the "
        "abstract. Quantum zebra routing improves lattice throughput by 40% on benchmark graphs.",
    },
]


REQUESTED: list[str] = []  # every URL the browser asked for, from every test of the module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not become healthy in {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bundled_home: Path) -> Iterator[tuple[str, float]]:
    """The app on a free loopback port over a copy of the bundled index plus one hostile paper."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    from rag.api import ingest_paths
    from rag.config import Settings

    home = tmp_path_factory.mktemp("browser") / "home"
    shutil.copytree(bundled_home, home)
    hostile = home.parent / "hostile.jsonl"
    hostile.write_text("\n".join(json.dumps(r) for r in HOSTILE) + "\n")
    ingest_paths([hostile], Settings(home=home))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env |= {"RAG_HOME": str(home), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["RAG_CACHE_DIR"] = os.environ["RAG_CACHE_DIR"]  # the model's ONNX export, made once per session
    command = [str(Path(sys.executable).parent / "rag"), "app", "--port", str(port)]
    started = time.monotonic()
    log = (home.parent / "streamlit.log").open("wb")
    proc = subprocess.Popen(command, cwd=home.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}", started
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def page(server: tuple[str, float], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1100}
        )
        context.on("request", lambda request: REQUESTED.append(request.url))
        yield context.pages[0] if context.pages else context.new_page()
        context.close()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_ask_in_browser_shows_cited_answer_and_sources(server: tuple[str, float], page: Page) -> None:
    url, started = server
    page.goto(url)
    # NOTE: not a blank page: the first start says what it loads (the libraries, then the model and the index),
    # unless both were over before the browser looked (the index opens in about a second), and the page is ready
    chat = page.get_by_placeholder("Ask about the papers…")
    loading = page.get_by_text(re.compile("Starting up: loading the search libraries|Loading the embedding model"))
    loading.or_(chat).first.wait_for(timeout=60_000)
    chat.wait_for(timeout=90_000)
    page_load = time.monotonic() - started
    page.get_by_text("indexed abstracts").wait_for(timeout=90_000)
    ready = time.monotonic() - started
    (ARTIFACTS / "first-load.txt").parent.mkdir(exist_ok=True)
    (ARTIFACTS / "first-load.txt").write_text(
        f"{page_load:.1f} s from `rag app` to the Ask page with its chat box; "
        f"{ready:.1f} s until the model and index are loaded\n"
    )

    chat.fill("What does WebLLM use for GPU acceleration in the browser?")
    chat.press("Enter")
    sources = page.get_by_text("Sources", exact=True)
    sources.wait_for(timeout=60_000)
    # NOTE: Streamlit may redraw the message after "Sources" shows; wait for the answer text itself.
    answer = page.locator("[data-testid='stChatMessage']").filter(has_text="WebGPU").last
    answer.wait_for(timeout=60_000)
    assert "[1]" in answer.inner_text()
    expander = page.locator("[data-testid='stExpander']").first
    assert "WebLLM" in expander.inner_text()
    expander.locator("summary").click()
    expander.get_by_text("WebAssembly for performant CPU computation").wait_for()
    page.wait_for_timeout(800)  # NOTE: let the expander finish opening before the screenshot
    assert shot(page, "ask").stat().st_size > 0

    with page.context.expect_page() as opened:  # a marker opens its source, the sentence highlighted
        answer.get_by_role("link", name="[1]").first.click()
    source = opened.value
    source.get_by_text("Cited source").wait_for(timeout=60_000)
    assert "WebLLM" in source.locator("h4").first.inner_text()
    # NOTE: waited for, not counted: Streamlit may draw the abstract after the heading
    source.locator("strong").filter(has_text="WebGPU").first.wait_for(timeout=30_000)
    source.close()


def test_the_paper_picker_takes_the_highlighted_title_on_enter(server: tuple[str, float], page: Page) -> None:
    url, _ = server
    page.goto(f"{url}/compare")
    page.get_by_placeholder("Type to search the library…").wait_for(timeout=90_000)
    picker = page.locator("[data-testid='stMultiSelect'] input").first
    for name in ("Splitwise", "WebLLM"):
        picker.click()
        page.keyboard.type(name)
        page.keyboard.press("Enter")
    chosen = page.locator("[data-testid='stMultiSelect']").first.locator("[data-tag]:visible")
    assert [t.split(":")[0] for t in chosen.all_inner_texts()] == ["Splitwise", "WebLLM"]
    assert page.get_by_text("Settings", exact=True).count() == 1  # a link straight to a page still shows the sidebar


def test_hostile_paper_renders_as_text(server: tuple[str, float], page: Page) -> None:
    url, _ = server
    page.goto(url)
    chat = page.get_by_placeholder("Ask about the papers…")
    chat.wait_for(timeout=90_000)
    chat.fill("What does quantum zebra routing improve?")
    chat.press("Enter")
    page.get_by_text("Hostile title").first.wait_for(timeout=60_000)
    page.locator("[data-testid='stExpander'] summary").first.click()
    page.get_by_text("<script>alert(1)</script>").first.wait_for(timeout=20_000)
    assert page.get_by_text("<img src=x onerror=alert(1)>").count() > 0
    assert page.locator("img[onerror]").count() == 0
    assert page.locator("script:has-text('alert(1)')").count() == 0
    shot(page, "hostile")


def test_every_page_works_and_nothing_is_fetched_from_another_host(server: tuple[str, float], page: Page) -> None:
    url, _ = server
    page.goto(f"{url}/compare")
    page.get_by_placeholder("e.g. compare methods for efficient LLM inference").fill(
        "Compare GPipe, Zero Bubble Pipeline Parallelism and 2BP as ways to make pipeline-parallel training efficient"
    )
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("all concern pipeline parallelism").wait_for(timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0
    shot(page, "compare")
    page.goto(f"{url}/review")
    page.get_by_placeholder("e.g. memory-efficient training of LLMs").fill("speculative decoding")
    page.get_by_role("button", name="Draft the review").click()
    page.get_by_text("References", exact=True).wait_for(timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0
    shot(page, "review")
    page.goto(f"{url}/library")
    page.get_by_placeholder("Search titles and abstracts by meaning…").wait_for(timeout=60_000)
    shot(page, "library")
    page.get_by_role("tab", name="Topic map").click()
    page.locator("[data-testid='stVegaLiteChart']").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # NOTE: let the chart draw its points before the screenshot
    shot(page, "topic-map")
    assert page.locator("[data-testid='stException']").count() == 0
    hosts = {request.split("/")[2] for request in REQUESTED if request.startswith("http")}
    assert hosts == {url.split("/")[2]}, hosts
