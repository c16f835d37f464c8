"""The package as users get it: the wheel installed outside the checkout, its front door and its import graph."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FRONT_DOOR = {"rag.api", "rag.models", "rag.export"}


def python_example(heading: str) -> str:
    """The first Python block of the README after `heading`."""
    found = re.search(rf"{re.escape(heading)}.*?```python\n(.*?)```", README, re.S)
    assert found, f"no Python example after {heading!r} in the README"
    return found.group(1)


def imports(path: Path, package: str = "rag", module_level: bool = False) -> set[str]:
    """The modules of `package` a file imports (at module level only, when asked)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
            found |= {f"{node.module}.{a.name}" if node.module == package else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == package}
    return found


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("path", [ROOT / "rag" / "cli.py", *sorted((ROOT / "rag" / "app").rglob("*.py"))], ids=str)
def test_front_ends_import_only_the_front_door(path: Path) -> None:
    deeper = {m for m in imports(path) if m not in FRONT_DOOR and not m.startswith("rag.app")}
    assert not deeper, f"{path.name} reaches past rag.api: {sorted(deeper)}"


def test_no_import_cycles_and_no_streamlit_outside_the_app() -> None:
    modules = {module_name(p): p for p in (ROOT / "rag").glob("*.py")}
    graph = {m: {d for d in imports(p, module_level=True) if d in modules} for m, p in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d})) for d in graph[start])

    assert not [m for m in graph if reaches(m, m, set())]
    assert not [m for m, p in modules.items() if imports(p, "streamlit")]


# --- the wheel, installed non-editable into a fresh venv ----------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding the built wheel. NOTE: its dependencies come from the test venv through a .pth line,
    as pip cannot download them with the network cut; the package itself is only the wheel's copy."""
    where = tmp_path_factory.mktemp("wheel")
    # NOTE: built from a clean copy: setuptools reuses a checkout's build/ folder, files since deleted included
    source = where / "source"
    litter = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "test-artifacts", "docs", "eval")
    shutil.copytree(ROOT, source, symlinks=True, ignore=litter)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(where), str(source)]
    subprocess.run(build, check=True, capture_output=True, cwd=where)
    (wheel,) = where.glob("paper_rag-*.whl")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.check_output(
            [venv / "bin" / "python", "-c", "import site; print(site.getsitepackages()[0])"], text=True
        ).strip()
    )
    (site / "test-venv-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "--no-deps",
        str(wheel),
    ]
    subprocess.run(install, check=True, capture_output=True, cwd=where)
    yield venv


def run_installed(venv: Path, *args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_wheel_works_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    rag = installed / "bin" / "rag"
    where = run_installed(
        installed, installed / "bin" / "python", "-c", "import rag; print(rag.__file__)", cwd=tmp_path
    )
    assert str(installed) in where.stdout, where.stdout + where.stderr

    ingest = run_installed(installed, rag, "ingest", cwd=tmp_path)
    assert ingest.returncode == 0 and "Indexed 168 papers" in ingest.stdout, ingest.stderr

    ask = run_installed(
        installed, rag, "ask", "What throughput gain does Zero Bubble report over 1F1B?", "--json", cwd=tmp_path
    )
    answer = json.loads(ask.stdout)
    assert not answer["refused"] and any("Zero Bubble" in c["title"] for c in answer["citations"])

    compare = run_installed(installed, rag, "compare", "Compare GPipe, Zero Bubble and 2BP", "--json", cwd=tmp_path)
    assert len(json.loads(compare.stdout)["rows"]) == 3, compare.stderr

    review = run_installed(installed, rag, "review", "KV cache compression for LLM inference", "--json", cwd=tmp_path)
    draft = json.loads(review.stdout)
    assert draft["references"] and draft["sections"] and not draft["refusal"]

    example = run_installed(
        installed, installed / "bin" / "python", "-c", python_example("**Python API.**"), cwd=tmp_path
    )
    assert example.returncode == 0, example.stderr
    assert "Zero Bubble" in example.stdout and "'GPipe'" in example.stdout and "## References" in example.stdout


@pytest.mark.slow
def test_rag_app_serves_the_installed_app(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "app.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [installed / "bin" / "rag", "app", "--port", str(port)], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc, log, timeout=90)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
            assert response.read() == b"ok"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # the page script itself, from the installed copy: every page renders without an exception
    script = """
from importlib import resources
from streamlit.testing.v1 import AppTest
main = str(resources.files("rag.app") / "main.py")
at = AppTest.from_file(main, default_timeout=240).run()
assert not at.exception, at.exception
for page in ("compare", "review", "library"):
    assert not at.switch_page(str(resources.files("rag.app") / "views" / f"{page}.py")).run().exception, page
print(main)
"""
    rendered = run_installed(installed, installed / "bin" / "python", "-c", script, cwd=tmp_path)
    assert rendered.returncode == 0 and str(installed) in rendered.stdout, rendered.stderr[-2000:]
