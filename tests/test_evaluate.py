"""`rag eval`: users measure retrieval, refusals and citation quality on their own questions."""

from __future__ import annotations

import json
from pathlib import Path

from tests.servers import cli_env, run_cli, write_jsonl
from tests.test_hardening import DEV, one_line_error

EXACT = [item for item in DEV if item["kind"] == "exact"][:2]
UNANSWERABLE = next(item for item in DEV if item["kind"] == "unanswerable")
# A question whose "gold" is another question's paper: the figures must notice.
WRONG = {**EXACT[0], "gold": EXACT[1]["gold"], "answer_contains": [], "kind": "wrong"}


def test_eval_reports_retrieval_refusal_and_citation_figures(bundled_home: Path, tmp_path: Path) -> None:
    questions = write_jsonl(tmp_path / "mine.jsonl", [*EXACT, UNANSWERABLE, WRONG])
    result = run_cli("eval", str(questions), "--json", env=cli_env(RAG_HOME=str(bundled_home)))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 4 and report["engine"] == "extractive"
    overall, by_kind = report["metrics"], report["by_kind"]
    assert overall["hit@1"] == round(2 / 3, 3)  # the wrong gold is not ranked first
    assert by_kind["exact"]["hit@1"] == 1.0 and by_kind["exact"]["answer_contains"] == 1.0
    assert by_kind["wrong"]["first_citation_gold"] == 0.0
    assert overall["unanswerable"] == 1 and overall["declined_unanswerable"] == 1
    assert overall["false_refusals"] == 0 and overall["answerable"] == 3
    assert overall["citation_validity"] == 1.0 and overall["support_rate"] == 1.0
    assert [row["question"] for row in report["rows"]] == [q["question"] for q in [*EXACT, UNANSWERABLE, WRONG]]
    assert all(row["latency_s"] > 0 for row in report["rows"])


def test_eval_table_fits_the_terminal_with_whole_metric_names(bundled_home: Path, tmp_path: Path) -> None:
    questions = write_jsonl(tmp_path / "mine.jsonl", [*EXACT, UNANSWERABLE, WRONG])
    result = run_cli("eval", str(questions), env=cli_env(RAG_HOME=str(bundled_home)) | {"COLUMNS": "60"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 60
    for name in ("declined_unanswerable", "first_citation_gold", "citation_validity", "unanswerable", "wrong"):
        assert name in result.stdout


def test_eval_rejects_bad_files_in_one_line_before_asking_anything(bundled_home: Path, tmp_path: Path) -> None:
    env = cli_env(RAG_HOME=str(bundled_home))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(EXACT[0]) + "\n{not json\n", encoding="utf-8")
    one_line_error(run_cli("eval", str(broken), env=env), "broken.jsonl:2")
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [EXACT[0], {"question": "q", "gold": ["No Such Paper"]}])
    one_line_error(run_cli("eval", str(unknown), env=env), "question 2", "No Such Paper")
    one_line_error(run_cli("eval", str(tmp_path / "missing.jsonl"), env=env), "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    one_line_error(run_cli("eval", str(empty), env=env), "no questions")


def test_eval_scores_comparison_requests_per_form(bundled_home: Path, tmp_path: Path) -> None:
    zero, two_bp = "Zero Bubble Pipeline Parallelism", "2BP: 2-Stage Backpropagation"
    requests = [
        {"request": "Compare zero bubble and 2BP as ways to train faster", "form": "purpose", "gold": [zero, two_bp],
         "facts": {zero: {"evaluation and reported results": ["up to 23% in throughput"]},
                   two_bp: {"evaluation and reported results": ["1.70x increase in throughput"]}}},
        {"request": "2BP vs FlashZip", "form": "list", "gold": [two_bp], "unresolved": ["FlashZip"],
         # NOTE: a phrase the abstract never states: the figures must notice
         "facts": {two_bp: {"approach": ["quantum annealing of the pipeline"]}}},
        # NOTE: an unknown name the file does not expect is counted apart
        {"request": "2BP vs FlashZip", "form": "unexpected", "gold": [two_bp]},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "compare.jsonl", requests)
    result = run_cli("eval", str(path), "--json", env=cli_env(RAG_HOME=str(bundled_home)))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 3 and report["unit"] == "comparison requests"
    purpose, listed = report["by_kind"]["purpose"], report["by_kind"]["list"]
    assert purpose["every_name_found"] == 1.0 and purpose["facts_in_right_cell"] == 1.0
    assert listed["unknown_reported"] == 1.0 and listed["facts_in_right_cell"] == 0.0
    assert listed["wrongly_unknown"] == 0 and report["by_kind"]["unexpected"]["wrongly_unknown"] == 1
    assert report["metrics"]["wrongly_added"] == 0 and report["metrics"]["cut_cells"] == 0


def test_eval_scores_requests_that_name_kinds_of_approach(bundled_home: Path, tmp_path: Path) -> None:
    spec_exec = "SpecExec: Massively Parallel Speculative Decoding for Interactive LLM Inference on Consumer Devices"
    offloading = [
        "Efficient and Economic Large Language Model Inference with Attention Offloading",
        "Fast Inference of Mixture-of-Experts Language Models with Offloading",
    ]
    pruning = ["Compact Language Models via Pruning and Knowledge Distillation"]
    requests = [
        {"request": "SpecExec vs offloading for running LLMs on consumer GPUs", "form": "vs", "gold": [spec_exec],
         "families": {"offloading": offloading}},
        # NOTE: labelled narrowly, so three of the five papers compared are not asked for
        {"request": "offloading vs pruning", "form": "vs",
         "families": {"pruning": pruning, "offloading": offloading[:1]}},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "kinds.jsonl", requests)
    report = json.loads(run_cli("eval", str(path), "--json", env=cli_env(RAG_HOME=str(bundled_home))).stdout)
    first, second = report["rows"]
    assert first["all_found"] and first["families_found"] == 1 and first["wrongly_added"] == 0
    assert second["families_found"] == 2 and second["rows"] == 5 and second["wrongly_added"] == 3
    assert report["metrics"]["kinds_found"] == 1.0 and report["metrics"]["rows_asked_for"] == round(5 / 8, 3)
