"""The extractive engine's refusals: a figure the named paper lacks is refused; a name another paper happens to
carry is not a reason to refuse."""

from __future__ import annotations

from rag.api import ask
from rag.config import Settings


def test_a_figure_the_named_papers_abstract_lacks_is_refused(bundled: Settings) -> None:
    answer = ask("What MMLU score does the Moonlight model trained with Muon achieve?", bundled)
    assert answer.refused and not answer.citations


def test_a_name_found_only_in_another_paper_does_not_refuse_the_answer(bundled: Settings) -> None:
    # NOTE: the answering abstract spells it "RISCV"; another retrieved abstract says "RISC-V".
    question = (
        "How well do classical machine learning algorithms other than neural networks parallelize "
        "on multi-core RISC-V ultra-low-power IoT processors?"
    )
    answer = ask(question, bundled)
    assert not answer.refused
    assert answer.citations[0].title.startswith("DNN is not all you need")
