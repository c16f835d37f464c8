"""Review drafts: coverage consistency, citations, exports, themes, the topic map and the LLM engine."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.config import Settings
from rag.export import write_review
from rag.models import ReviewDraft
from rag.themes import cluster, distinctive_terms, heading, vocabulary_of
from tests.servers import FakeLLM, bundled_records, llm_settings, source_sentences, write_jsonl

TOPIC = "Pipeline parallelism and scheduling for distributed training of large models"


@pytest.fixture(scope="module")
def draft(bundled_home: Path) -> ReviewDraft:
    from rag import api

    settings = Settings(_env_file=None, home=bundled_home, engine="extractive")  # type: ignore[call-arg]
    return api.review(TOPIC, settings)


def test_coverage_is_consistent(draft: ReviewDraft) -> None:
    cov = draft.coverage
    relevant = {c.paper_id for c in cov.relevant}
    left = {c.paper_id for c in cov.left_out}
    assert set(cov.cited) | left == relevant
    assert not set(cov.cited) & left
    assert all(c.reason in ("below threshold", "duplicate", "off-theme") for c in cov.left_out)
    assert [r.paper_id for r in draft.references] == cov.cited
    assert cov.thresholds["cite"] >= cov.thresholds["relevant"]


@pytest.mark.parametrize(
    "topic",
    ["protein folding with diffusion models", "graph neural networks for traffic forecasting",
     "causes of the 2008 financial crisis"],
)  # fmt: skip
def test_a_topic_the_library_does_not_cover_is_refused(bundled: Settings, topic: str) -> None:
    from rag import api

    refused = api.review(topic, bundled)
    assert refused.refusal.startswith(f"No indexed paper is about “{topic}”")
    assert refused.sections == [] and refused.references == [] and refused.coverage.relevant == []
    assert refused.refusal in write_review(refused, "md", None) and "The closest are “" in refused.refusal


def test_a_covered_topic_with_a_hyphenated_word_no_paper_uses_is_drafted(bundled: Settings) -> None:
    """No abstract writes "low-bit"; its parts stand for it, or the rarest weight made the topic look uncovered."""
    from rag import api

    draft = api.review("low-bit quantization", bundled)
    assert draft.refusal == "" and len(draft.references) >= 3
    titles = [r.title for r in draft.references]
    assert any("FP8" in t for t in titles) and any("OliVe" in t for t in titles), titles


def test_a_topic_that_names_a_system_no_paper_writes_is_drafted_saying_so(bundled: Settings) -> None:
    from rag import api

    draft = api.review("PipeDream-style asynchronous pipeline training", bundled)
    assert draft.refusal == "" and any(r.title.startswith("GPipe") for r in draft.references)
    assert "No indexed abstract mentions “PipeDream”; the draft reviews the rest of the topic." in draft.warnings
    assert not api.review("Pipeline parallelism for large model training", bundled).warnings
    # NOTE: the introduction read "… 9 indexed papers on pipeDream-style asynchronous pipeline training"
    assert "on PipeDream-style asynchronous pipeline training" in draft.sections[0].text


def test_a_covered_topic_in_other_words_than_its_papers_is_drafted(bundled: Settings) -> None:
    """Its papers say "mobile phone": coverage counts the everyday words of the glossary's terms a paper uses, as
    BM25 does, or the topic looked uncovered (P 0.13)."""
    from rag import api

    draft = api.review("running LLMs on smartphones", bundled)
    assert draft.refusal == "", draft.refusal
    titles = [r.title for r in draft.references]
    assert any("Mobile Phone GPUs" in t for t in titles) and any("mllm-NPU" in t for t in titles), titles


def test_a_covered_topic_naming_a_technique_and_its_setting_is_drafted(bundled: Settings) -> None:
    """No one paper holds most of its words (EE-LLM exits early, the MoD papers skip layers): it was refused."""
    from rag import api

    draft = api.review("Early exiting and layer skipping for adaptive-depth inference", bundled)
    assert draft.refusal == "", draft.refusal
    titles = [r.title for r in draft.references]
    assert any(t.startswith("EE-LLM") for t in titles) and any(t.startswith("p-MoD") for t in titles), titles


@pytest.mark.parametrize(
    ("topic", "parts"),
    [("Mixture-of-experts architectures in multimodal large language models",
      ["Mixture-of-experts architectures", "multimodal large language models"]),
     ("Speculative decoding for faster LLM inference", ["Speculative decoding", "faster LLM inference"]),
     ("in-browser machine learning", ["in-browser machine learning"])],
)  # fmt: skip
def test_a_topic_is_read_as_its_subject_and_setting(topic: str, parts: list[str]) -> None:
    from rag.review import facets

    assert facets(topic) == parts


def test_a_review_is_about_its_subject_in_its_setting(bundled: Settings) -> None:
    """A mixture-of-experts paper on text alone was the best paper of this review: "in" did not divide the topic, and
    the multimodal papers' subject counted no more than their shared setting."""
    from rag import api

    draft = api.review("Mixture-of-experts architectures in multimodal large language models", bundled)
    best = [c.title for c in draft.coverage.relevant[:2]]
    assert all(t.startswith(("Uni-MoE", "Octavius")) for t in best), best


def test_a_narrow_review_cites_its_papers_not_their_neighbourhood(bundled: Settings) -> None:
    """Feedback read the 10 best papers while a narrow topic has 3: their centroid was the crowd around them, and
    this review cited Splitwise, FP8 on Gaudi and offloading papers beside the particle-physics ones."""
    from rag import api

    draft = api.review("Fast machine learning hardware for particle physics experiments", bundled)
    cited = [r.title for r in draft.references]
    assert {t.split(":")[0] for t in cited} >= {
        "Sets are all you need",
        "A reconfigurable neural network ASIC for detector front-end data compression at the HL-LHC",
        "Applications and Techniques for Fast Machine Learning in Science",
    }, cited
    assert not any(word in t for t in cited for word in ("LLM", "Language Model", "Large Models")), cited


def test_theme_names_are_phrases_their_papers_use(draft: ReviewDraft) -> None:
    """Each is a phrase of a title or a term of the glossary, and its papers write it."""
    from rag.glossary import glossary
    from rag.themes import vocabulary_of

    assert draft.refusal == ""
    records = bundled_records(0, 168)
    papers = {r["id"]: f"{r['title']}. {r['abstract']}" for r in records}
    phrases = vocabulary_of([r["title"] for r in records]) | glossary().phrases
    for section in draft.sections[1:]:
        name = section.heading.lower()
        assert name in phrases and " and " not in name, section.heading
        assert any(name in papers[pid].lower() for pid in section.paper_ids), section.heading


@pytest.mark.parametrize(
    ("topic", "parts"),
    [("Model compression for LLMs: pruning, knowledge distillation and binarization",
      ["pruning", "knowledge distillation", "binarization"]),
     ("Parallelism strategies (pipeline, tensor and 3D parallelism) for training",
      ["pipeline parallelism", "tensor parallelism", "3D parallelism"]),
     ("LLM serving: batching and KV-cache management, prefill/decode disaggregation",
      ["batching", "KV-cache management", "prefill/decode disaggregation"]),
     ("TinyML: deploying and training machine learning on microcontrollers, RISC-V and IoT processors", []),
     ("State-space models (Mamba) for vision", []),
     ("Efficient inference (e.g., quantization, pruning, etc.)", ["quantization", "pruning"]),
     ("Efficient MLLMs (including token pruning and distillation)", ["token pruning", "distillation"]),
     ("pipeline parallelism", [])],
)  # fmt: skip
def test_the_parts_a_topic_lists_are_read_as_a_researcher_means_them(topic: str, parts: list[str]) -> None:
    from rag.review import listed_parts

    assert listed_parts(topic) == parts


def test_a_draft_of_one_theme_names_it_after_the_topic(bundled: Settings) -> None:
    """Named apart from the rest of the library, the one theme of this draft read "Accelerated decoding"; of others,
    "Machine learning" and "Large-scale training" (for early-exit inference)."""
    from rag import api

    draft = api.review("speculative decoding", bundled)
    assert draft.outline == ["Introduction", "Speculative decoding"], draft.outline
    assert "theme" not in draft.sections[0].text and draft.references, draft.sections[0].text
    # NOTE: the introduction names the papers; the one section does not list them again ("This theme covers ...")
    assert "HADES [1]" in draft.sections[0].text, draft.sections[0].text
    assert "theme" not in draft.sections[1].text, draft.sections[1].text


def test_an_introduction_opens_with_the_problem_in_a_cited_papers_words(bundled: Settings) -> None:
    """A blind judge found every dev introduction "only theme names with counts"; it now opens with the sentence of a
    cited paper that states the problem the topic meets, verbatim, cited, and readable alone, and quoted there only.
    Where no such sentence is close to the topic ("MLLM architecture design") it opens with the themes, as before."""
    from rag import api
    from rag.index import sentences_of

    draft = api.review("Pipeline parallelism for large model training", bundled)
    framing, rest = draft.sections[0].text.split("\n\n")
    n = int(framing.rsplit("[", 1)[1].split("]")[0])
    cited = next(r for r in draft.references if r.n == n)
    assert "pipeline" in framing.lower() and not framing.startswith(("This draft", "However", "We ")), framing
    sentence = framing.replace(f" [{n}]", "")
    paper = next(p for p in api.papers(bundled) if p.paper_id == cited.paper_id)
    assert sentence in sentences_of(paper), (sentence, cited.title)
    assert rest.startswith("This draft reviews"), rest
    assert all(framing not in s.text for s in draft.sections[1:]), "quoted twice"
    assert api.review("MLLM architecture design", bundled).sections[0].text.startswith("This draft reviews")


def test_a_long_draft_has_a_theme_per_few_papers() -> None:
    """ "MLLM architecture design" cited 34 papers in two themes, "Vision" (28) and "ML" (6): silhouette alone
    prefers two clusters; at least one theme per THEME_PAPERS papers, as silhouette picks among those counts."""
    from rag.themes import cluster

    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4] + 0.3
    vectors = np.concatenate([centres[k] + 0.35 * rng.normal(size=(n, 8)) for k, n in enumerate([22, 4, 4, 4])])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert len(set(cluster(vectors, max_k=5, min_k=round(34 / 6)))) == 5
    assert len(set(cluster(vectors, max_k=5, min_k=9))) == 5  # never past max_k
    assert len(set(cluster(vectors[:3], max_k=5, min_k=2))) == 1  # too few to split


def test_no_theme_swallows_a_long_draft(bundled: Settings) -> None:
    from rag import api
    from rag.review import MAX_THEMES, THEME_PAPERS

    draft = api.review("MLLM architecture design", bundled)
    sizes = [len(s.paper_ids) for s in draft.sections[1:]]
    assert sum(sizes) >= 20 and max(sizes) <= sum(sizes) / 2, sizes
    assert len(sizes) >= min(MAX_THEMES, round(sum(sizes) / THEME_PAPERS)), sizes


def test_the_parts_a_topic_lists_head_its_themes_in_its_order(bundled: Settings) -> None:
    """A researcher who lists what a review should cover expects its sections to follow that list. Pruning's paper
    scores far above the rest, so the cut left LLaVA-KD and LLAVADI out: a listed part no cited paper addresses
    gets the relevant paper that addresses it most."""
    from rag import api

    draft = api.review("Model compression for LLMs: pruning, knowledge distillation and binarization", bundled)
    assert draft.outline[1:4] == ["Pruning", "Knowledge distillation", "Binarization"], draft.outline
    titles = {r.paper_id: r.title for r in draft.references}
    sections = {s.heading: [titles[pid] for pid in s.paper_ids] for s in draft.sections[1:]}
    assert any(t.startswith("Compact Language Models via Pruning") for t in sections["Pruning"]), sections
    assert any(t.startswith("FBI-LLM") for t in sections["Binarization"]), sections
    assert any("Distill" in t or "LLAVADI" in t for t in sections["Knowledge distillation"]), sections


def test_each_part_a_topic_lists_is_cited_as_a_topic_is(bundled: Settings) -> None:
    """The cut for the whole topic follows its best parts (pruning and sparsity, far above the rest): the draft cited
    one paper on distillation, LLAVADI, and left out LLaVA-KD, a framework for distilling multimodal LLMs, and a sparse
    inference accelerator. Each part's papers are now cut at the same fraction of that part's best two."""
    from rag import api

    topic = (
        "Model compression beyond quantization for LLMs and multimodal LLMs: pruning, sparsity, knowledge distillation"
        " and binarization"
    )
    draft = api.review(topic, bundled)
    titles = {r.paper_id: r.title for r in draft.references}
    sections = {s.heading: [titles[pid] for pid in s.paper_ids] for s in draft.sections[1:]}
    distilling = sections["Knowledge distillation"]
    assert any(t.startswith("LLaVA-KD") for t in distilling) and any(t.startswith("LLAVADI") for t in distilling)
    assert any(t.startswith("An Efficient Sparse Inference") for t in titles.values()), sections


def test_a_draft_opens_with_its_most_relevant_theme(bundled: Settings) -> None:
    """Themes were ordered by size, so this draft opened on the training systems its setting ("large model training")
    brings in (Megatron-LM, parallelization layouts, Redco), and came to the pipeline schedules it is about second."""
    from rag import api

    draft = api.review("Pipeline parallelism for large model training", bundled)
    titles = {r.paper_id: r.title for r in draft.references}
    first = [titles[pid] for pid in draft.sections[1].paper_ids]
    assert any(t.startswith("Zero Bubble") for t in first) and any(t.startswith("2BP") for t in first), draft.outline


def test_title_phrases_end_where_a_title_phrase_ends() -> None:
    from rag.themes import vocabulary_of

    words = vocabulary_of(["Efficient Large Language Models from Scratch: Speculative Decoding for LLM Serving",
                           "Visual and Language Models", "Training LLMs on Any GPU/TPUs"])  # fmt: skip
    assert {"language models", "speculative decoding", "llm serving", "scratch", "models", "decoding"} <= words
    assert not {"large language", "models scratch", "decoding llm", "efficient", "large", "speculative"} & words
    assert "visual" not in words and "gpu tpus" not in words and {"gpu", "tpus"} <= words
    # NOTE: a name with a dot inside is one word: "The ML.ENERGY Benchmark" named a theme "ENERGY benchmark"
    dotted = vocabulary_of(["The ML.ENERGY Benchmark: Toward Automated Inference Energy Measurement", "Models. Data"])
    assert "ml.energy benchmark" in dotted and "energy benchmark" not in dotted and "models" in dotted
    # NOTE: what "is" says of a subject is no phrase: "Muon is Scalable for LLM Training" named a theme "Scalable"
    said = vocabulary_of(["Muon is Scalable for LLM Training", "DNN is not all you need: Parallelizing ML"])
    assert {"llm training", "training", "muon", "dnn"} <= said and not {"scalable", "need", "you need"} & said


def test_a_theme_is_named_by_a_term_of_the_field(bundled: Settings) -> None:
    """Titles alone gave a theme of this draft the name "Techniques" (from "Applications and Techniques for Fast
    Machine Learning in Science"); its papers write of gradient checkpointing, a term of the glossary."""
    from rag import api

    outline = api.review("distributed LLM training", bundled).outline
    assert "Techniques" not in outline and "Gradient checkpointing" in outline, outline


def test_themes_are_not_named_alike() -> None:
    """A review of "reducing communication in distributed training" had themes "Language models" and "Language
    model"; the second takes its next term."""
    from rag.themes import theme_names

    assert theme_names([["language models", "training"], ["language model", "MoE"]]) == ["Language models", "MoE"]


def _quotes(paragraph: str) -> list[str]:
    """A section paragraph's cited sentences, without the name that leads it ("EE-LLM [3]: We present …")."""
    return re.split(r"(?<=\][.!?])\s+", re.sub(r"^.*? \[\d+\]: ", "", paragraph, count=1))


def test_sections_cite_only_listed_references(draft: ReviewDraft) -> None:
    numbers = {r.n for r in draft.references}
    assert numbers == set(range(1, len(numbers) + 1))
    cited = {int(n) for s in draft.sections for n in re.findall(r"\[(\d+)\]", s.text)}
    assert cited == numbers
    titles = {r.title for r in draft.references}
    assert {
        "Zero Bubble Pipeline Parallelism",
        "GPipe: Efficient Training of Giant Neural Networks using Pipeline Parallelism",
    } <= titles
    assert draft.outline[0] == "Introduction" and len(draft.sections) == len(draft.outline) >= 2


def test_section_sentences_do_not_open_by_pointing_to_a_sentence_not_shown(bundled: Settings) -> None:
    """The README's example: its abstracts' sentences open "To this end, …", "Finally, …", "Specifically, …"."""
    from rag import api
    from rag.compare import tidy

    draft = api.review("KV cache compression for LLM inference", bundled)
    paragraphs = [p for s in draft.sections[1:] for p in s.text.split("\n\n") if not p.startswith("This theme")]
    sentences = [s for p in paragraphs for s in _quotes(p)]
    assert len(sentences) >= 10
    assert [s for s in sentences if tidy(s) != s] == []


def test_each_paper_is_quoted_first_on_the_topic_it_is_cited_for(bundled: Settings) -> None:
    """AccLLM was cited in the README's KV-cache review for its FPGA and its energy efficiency; its 4-bit KV cache, the
    reason to cite it, was in no sentence the review quoted."""
    from rag import api

    draft = api.review("KV cache compression for LLM inference", bundled)
    n = next(r.n for r in draft.references if r.title.startswith("AccLLM"))
    paragraph = next(p for s in draft.sections[1:] for p in s.text.split("\n\n") if p.endswith(f"[{n}]."))
    presents, on_topic, *_ = _quotes(paragraph)
    assert presents.startswith("We propose AccLLM") and on_topic.startswith("At the algorithmic level")
    assert "4-bit KV cache" in on_topic


def test_a_quoted_sentence_that_leans_on_the_one_before_comes_with_it() -> None:
    """mllm-NPU's "Specifically, it re-constructs the prompt …" read "It re-constructs …" with no "it" before it."""
    from rag.compare import with_context

    abstract = [
        "LLMs run slowly on phones.",
        "We present mllm-NPU, an inference system.",
        "Specifically, it re-constructs the prompt and model.",
        "This paper reports 22x faster prefill.",
    ]
    assert with_context(abstract, [3, 2]) == [1, 2, 3]
    assert with_context(abstract, [3]) == [3]


def test_a_paragraph_says_what_a_name_it_quotes_is(bundled: Settings) -> None:
    """A blind judge read "We compare the performance of mallocMuZero to the default solver …" in a draft that never
    said what mallocMuZero is: the sentence in which the abstract introduces a name of its own comes first. A name the
    abstract only mentions ("Mixture-of-Experts (MoE) models have been proposed to …") brings nothing."""
    from rag import api
    from rag.review import introducing

    draft = api.review("deep learning compilers", bundled)
    paragraph = next(p for s in draft.sections[1:] for p in s.text.split("\n\n") if "performance of mallocMuZero" in p)
    introduced = paragraph.find("introduce a Reinforcement Learning agent, mallocMuZero")
    assert 0 <= introduced < paragraph.find("performance of mallocMuZero"), paragraph
    abstract = [
        "Mixture-of-Experts (MoE) models have been proposed to lower the cost of training.",
        "We present SE-MoE, an elastic MoE training system.",
        "SE-MoE outperforms DeepSpeed on MoE training.",
    ]
    assert introducing(abstract, [2]) == [1]


def test_a_paragraph_presents_its_paper_before_its_details(bundled: Settings) -> None:
    """EE-LLM's paragraph opened "Built upon Megatron-LM, EE-LLM implements …" and never said what EE-LLM is; ARMOR's
    quoted "(3) For the training algorithm …" twice around an uncited "(2) …", and a sentence broke at "e.g. LLaVA"
    (a blind judge's reading of eleven dev drafts)."""
    from rag import api
    from rag.compare import presenting, system_name, tidy
    from rag.index import sentences_of

    draft = api.review("MLLM architecture design", bundled)
    papers = {r.n: r for r in draft.references}
    abstracts = {p.title: p for p in api.get_retriever(bundled).papers.values()}
    presented = 0
    for section in draft.sections[1:]:
        for paragraph in section.text.split("\n\n"):
            if paragraph.startswith("This theme covers"):
                continue
            sentences = _quotes(paragraph)
            numbers = {int(m) for s in sentences for m in re.findall(r"\[(\d+)\]", s)}
            assert len(numbers) == 1 and all(re.search(r"\[\d+\][.!?]$", s) for s in sentences), paragraph
            n = numbers.pop()
            paper = abstracts[papers[n].title]
            # NOTE: led by the paper's name, whose "we" each quote is
            assert paragraph.startswith(f"{system_name(paper.title) or paper.title} [{n}]: "), paragraph
            own = [tidy(s) for s in sentences_of(paper)]
            quoted = [re.sub(r" \[\d+\](?=[.!?]$)", "", s) for s in sentences]
            assert all(q in own for q in quoted) and len(set(quoted)) == len(quoted), paragraph
            if system_name(paper.title) and presenting(sentences_of(paper), paper.title):
                assert own[presenting(sentences_of(paper), paper.title)[0]] in quoted
                presented += 1
    assert presented >= 10
    ee = api.review("early-exit inference", bundled)
    assert any(
        _quotes(p)[0].startswith("We present EE-LLM, a framework") for s in ee.sections for p in s.text.split("\n\n")
    )


@pytest.mark.parametrize("topic", ["MLLM architecture design", "low-bit quantization", "pipeline parallelism"])
def test_a_paragraph_quotes_a_list_whole_and_no_sentence_that_only_announces_one(topic: str, bundled: Settings) -> None:
    """Blind judges read BlueLM-V-3B's "(2) Fast Speed: …" and "(3) Strong Performance: …" with no "(1)", and "The
    design of Redco emphasizes two key aspects." and "We contribute in three significant ways." (FP8 on Gaudi) with
    fewer aspects and ways after them than they announced."""
    from rag import api
    from rag.compare import needs_previous, tidy
    from rag.index import sentences_of
    from rag.text import announces

    draft = api.review(topic, bundled)
    abstracts = {p.title: sentences_of(p) for p in api.get_retriever(bundled).papers.values()}
    titles = {r.n: r.title for r in draft.references}
    items = 0
    for section in draft.sections[1:]:
        for paragraph in section.text.split("\n\n"):
            numbers = re.findall(r"\[(\d+)\][.!?]$", paragraph)
            if paragraph.startswith("This theme covers") or not numbers:
                continue
            own = [tidy(s) for s in abstracts[titles[int(numbers[0])]]]
            quoted = [own.index(re.sub(r" \[\d+\](?=[.!?]$)", "", s)) for s in _quotes(paragraph)]
            assert not [own[i] for i in quoted if announces(own[i])], paragraph
            for i in (i for i in quoted if re.match(r"\(?(?:ii|iii|[2-9])\)", own[i])):
                assert needs_previous(own[i]) and i - 1 in quoted, paragraph
                items += 1
    assert items or topic != "MLLM architecture design"


def test_a_sentence_that_informs_both_approach_and_results_is_quoted_once(bundled: Settings) -> None:
    """Muon's "We identify two crucial techniques for scaling up Muon" was its approach and a result, and read twice."""
    from rag import api

    draft = api.review("mixture of experts", bundled)
    sentences = [s for section in draft.sections[1:] for s in re.split(r"(?<=\][.!?])\s+", section.text)]
    assert any("Muon" in s for s in sentences)
    assert len(sentences) == len(set(sentences)), [s for s in sentences if sentences.count(s) > 1]


UNRELATED = [
    {"title": "Coral Reef Resilience Under Repeated Marine Heatwaves",
     "abstract": "We report a decade of field surveys across 42 reef sites, measuring coral cover, bleaching and "
                 "recruitment after each heatwave. Reefs with many herbivorous fish recovered 2.3 times faster."},
    {"title": "Merchant Networks and Credit in Late Medieval Mediterranean Trade",
     "abstract": "Using 3,100 notarial contracts from Genoa and Venice, we reconstruct the networks of partners and "
                 "creditors behind long-distance trade. Reputation within kin groups sustained credit."},
]  # fmt: skip


def test_a_draft_is_the_same_when_unrelated_papers_join_the_library(bundled_home: Path, tmp_path: Path) -> None:
    """Two papers on coral reefs and medieval trade once changed these drafts' papers and themes: relevance was
    standardised over the whole index, and k-means read the cited papers in the order of their scores."""
    from rag import api

    topics = ["distributed LLM training", "MLLM architecture design", TOPIC]
    before = [api.review(t, Settings(_env_file=None, home=bundled_home)) for t in topics]  # type: ignore[call-arg]
    home = tmp_path / "home"
    shutil.copytree(bundled_home, home)
    grown = Settings(_env_file=None, home=home)  # type: ignore[call-arg]
    api.ingest_paths([write_jsonl(tmp_path / "unrelated.jsonl", UNRELATED)], grown)
    for topic, old in zip(topics, before, strict=True):
        new = api.review(topic, grown)
        assert [r.title for r in new.references] == [r.title for r in old.references], topic
        assert [(s.heading, s.paper_ids) for s in new.sections] == [(s.heading, s.paper_ids) for s in old.sections]


def test_markdown_and_bibtex_exports(draft: ReviewDraft, tmp_path: Path) -> None:
    import bibtexparser

    from rag.export import write_review

    markdown = write_review(draft, "md", None)
    assert markdown.startswith(f"# {draft.title}") and "## References" in markdown and "## Coverage" in markdown
    library = bibtexparser.parse_string(write_review(draft, "bib", None))
    keys = [e.key for e in library.entries]
    assert len(keys) == len(set(keys)) == len(draft.references)
    assert {e.fields_dict["title"].value.strip("{}") for e in library.entries} == {r.title for r in draft.references}
    again = bibtexparser.parse_string(write_review(draft, "bib", None))
    assert [e.key for e in again.entries] == keys
    assert ReviewDraft.model_validate_json(write_review(draft, "json", None)) == draft
    assert "wrote review" in write_review(draft, "bib", tmp_path / "r.bib")


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([["pipeline bubbles pipeline schedule", "pipeline bubbles in training"], ["quantized int8 weights"]],
         ["pipeline", "int8"]),
        ([["mixture of experts routing", "experts routing offloading"]], ["experts"]),
    ],
)  # fmt: skip
def test_distinctive_terms(groups: list[list[str]], expected: list[str]) -> None:
    terms = distinctive_terms(groups)
    assert all(any(word in t for t in ts) for word, ts in zip(expected, terms, strict=True))


@pytest.mark.parametrize(
    ("term", "docs", "form"),
    [("instruction tuning", ["Visual Instruction Tuning. We study instruction tuning of MLLMs."], "instruction tuning"),
     ("kv cache", ["KV Cache Compression. The KV cache grows with the context."], "KV cache"),
     ("iot processors", ["ML on IoT Processors. We parallelise it on processors with eight cores."], "IoT processors"),
     ("vision mamba", ["Vision Mamba. Vision Mamba is a backbone for vision tasks."], "Vision Mamba"),
     ("llm", ["LLM Serving. Serving LLMs is costly; LLM serving systems batch requests."], "LLM")],
)  # fmt: skip
def test_a_term_is_spelled_as_running_text_writes_it(term: str, docs: list[str], form: str) -> None:
    """Titles capitalise every word: 'Instruction Tuning' and 'Instruction tuning' once named two themes of a draft."""
    from rag.themes import surface_form

    assert surface_form(term, docs) == form


@pytest.mark.parametrize(
    ("form", "docs", "whole"),
    [("learning engineering", ["Agents on Machine Learning Engineering. We test machine learning engineering."],
      "machine learning engineering"),
     ("KV cache", ["KV Cache Compression. The KV cache grows; a quantised KV cache is small."], "KV cache"),
     ("learning engineering", ["Machine Learning Engineering. Deep learning engineering is hard."],
      "learning engineering"),  # NOTE: "machine" before it once in two: not nearly always
     ("agents", ["Machine Learning Agents. ML agents and LLM agents."], "agents")],
)  # fmt: skip
def test_a_theme_name_is_the_whole_phrase_its_papers_write(form: str, docs: list[str], whole: str) -> None:
    """A title's phrase "Machine Learning Engineering" once named a theme "Learning engineering": terms are one or two
    words, so the name lost the word its papers always write before them."""
    from rag.themes import whole_phrase

    assert whole_phrase(form, docs, vocabulary_of([d.split(".")[0] for d in docs])) == whole


@pytest.mark.parametrize(("terms", "text"), [([], "Other work"), (["pipeline"], "Pipeline"),
                                             (["LLM", "edge"], "LLM and edge")])  # fmt: skip
def test_heading(terms: list[str], text: str) -> None:
    assert heading(terms) == text


def test_cluster_separates_obvious_groups() -> None:
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    vectors = np.stack([a + 0.05 * rng.standard_normal(8) for _ in range(5)] +
                       [b + 0.05 * rng.standard_normal(8) for _ in range(5)])  # fmt: skip
    labels = cluster(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    assert len(set(labels[:5])) == len(set(labels[5:])) == 1 and labels[0] != labels[5]
    assert list(cluster(vectors[:3])) == [0, 0, 0]


def test_topic_map(bundled: Settings) -> None:
    from rag import api

    points = api.topic_map(bundled)
    assert len(points) == 168
    assert set(points[0]) == {"paper_id", "title", "x", "y", "theme"}
    themes = {p["theme"] for p in points}
    assert len(themes) == 9  # about √(n/2): a library of 168 papers is not two topics
    phrases = vocabulary_of([p["title"] for p in points])
    named = [t for t in themes if all(part.lower() in phrases for part in re.split(r" and | \(\d+\)$", t) if part)]
    assert len(named) == len(themes)
    assert not [t for t in themes if re.search(r"\(\d+\)$", t)]  # distinct names, not "Machine learning (2)"
    assert all(np.isfinite([p["x"], p["y"]]).all() for p in points)


def test_the_topic_map_keeps_its_layout_when_papers_are_added(tmp_path: Path, isolated: Path) -> None:
    from rag import api

    settings = Settings(home=isolated)
    records = bundled_records(0, 42)
    api.ingest_paths([write_jsonl(tmp_path / "a.jsonl", records[:40])], settings)
    before = {p["paper_id"]: (p["x"], p["y"]) for p in api.topic_map(settings)}
    assert {p["paper_id"]: (p["x"], p["y"]) for p in api.topic_map(settings)} == before  # unchanged: the same map
    api.ingest_paths([write_jsonl(tmp_path / "b.jsonl", records[40:])], settings)
    after = {p["paper_id"]: (p["x"], p["y"]) for p in api.topic_map(settings)}
    assert len(after) == 42
    shutil.rmtree(isolated / "layouts")
    fresh = {p["paper_id"]: (p["x"], p["y"]) for p in api.topic_map(settings)}
    old = np.array(list(before.values()))

    def moved(layout: dict[str, tuple[float, float]]) -> float:
        """How far the median paper moved, as a share of the map's extent."""
        shifts = np.linalg.norm(old - np.array([layout[i] for i in before]), axis=1) / np.ptp(old, axis=0).max()
        return float(np.median(shifts))

    # NOTE: here 0.08 of the map with the layout continued and aligned, 0.23 with a fresh one; over twelve random
    # draws of 40 papers and 2 or 5 more, 0.01 to 0.08 and 0.31 to 1.8 (rag.themes.align, BENCHMARKS.md)
    assert moved(after) < min(0.12, moved(fresh))


def test_a_large_library_maps_a_stable_sample_reading_only_its_vectors(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag import api
    from rag.store import Store

    settings = Settings(home=isolated)
    records = bundled_records(0, 44)
    api.ingest_paths([write_jsonl(tmp_path / "a.jsonl", records[:40])], settings)
    monkeypatch.setattr(api, "MAP_PAPERS", 30)

    def mapped() -> set[str]:
        with monkeypatch.context() as m:
            m.setattr(Store, "all_papers", lambda *a, **k: pytest.fail("read every paper and vector"))
            return {p["paper_id"] for p in api.topic_map(settings)}

    before = mapped()
    assert len(before) == 30 and before < {r["id"] for r in records[:40]}
    api.ingest_paths([write_jsonl(tmp_path / "b.jsonl", records[40:])], settings)
    after = mapped()
    assert len(after) == 30 and len(before & after) >= 30 - 4  # four papers added displace at most four


# --- the LLM engine -----------------------------------------------------------------------------


def assert_citations_point_to_references(draft: ReviewDraft, settings: Settings) -> None:
    """Every marker is a reference, every reference an indexed paper, and every model-written section cites
    only its own theme's papers; a section that fell back to offline text says so in a warning."""
    from rag import api

    indexed = {p.paper_id: p.title for p in api.papers(settings)}
    number_of = {r.paper_id: r.n for r in draft.references}
    assert [r.n for r in draft.references] == list(range(1, len(draft.references) + 1))
    assert all(indexed.get(r.paper_id) == r.title for r in draft.references)
    for section in draft.sections[1:]:
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", section.text)}
        assert markers and markers <= {number_of[p] for p in section.paper_ids}, (section.heading, section.text)
        if section.origin == "extractive":
            assert any(f"“{section.heading}”" in w for w in draft.warnings), (section.heading, draft.warnings)


def fake_model(body: dict[str, object]) -> str:
    """Names each theme; writes each section from source 1's first three sentences, one invention and a dangling
    [99]: as JSON when asked for it, as prose otherwise."""
    messages: list[dict[str, str]] = body["messages"]  # type: ignore[assignment]
    prompt = next(m["content"] for m in messages if m["role"] == "user")  # NOTE: not a retry's "not valid JSON"
    if prompt.startswith("Give a short heading"):
        return f"Theme on {prompt.splitlines()[1][2:30]}"
    sentences = [(s.rstrip("."), [1]) for s in source_sentences(prompt, 1).split(". ")[:3]]
    sentences += [("Quantum bananas cure insomnia in 97% of cats", [2]), ("This is confirmed by", [99])]
    if "response_format" in body:
        return json.dumps({"sentences": [{"text": text, "sources": cited} for text, cited in sentences]})
    return " ".join(f"{text} [{cited[0]}]." for text, cited in sentences)


def prose_only(body: dict[str, object]) -> str:
    """A model on a server that ignores response_format: prose, whatever was asked."""
    return fake_model({k: v for k, v in body.items() if k != "response_format"})


@pytest.mark.parametrize("model", [fake_model, prose_only])
def test_llm_sections_are_verified_and_renumbered(bundled: Settings, fake_llm: FakeLLM, model: Any) -> None:
    from rag import api

    settings = llm_settings(bundled, fake_llm.play(model).base_url)
    draft = api.review(TOPIC, settings)
    assert draft.engine == "llm:smollm2" and draft.prompt["name"] == "review"
    themes = draft.sections[1:]
    assert themes and all(s.heading.startswith("Theme on ") for s in themes)
    written = [s for s in themes if s.origin == "llm"]
    assert written and all("[99]" not in s.text and "97%" not in s.text for s in written)
    assert sum("supports were removed" in w for w in draft.warnings) == len(written)
    assert_citations_point_to_references(draft, settings)
    assert draft.usage["prompt_tokens"] == 321 * len(fake_llm.completions)


@pytest.mark.parametrize("fault", ["500", "Nothing to cite here."])
def test_llm_failures_fall_back_per_section(bundled: Settings, fake_llm: FakeLLM, fault: str) -> None:
    from rag import api

    settings = llm_settings(bundled, fake_llm.play(fault).base_url, llm_max_retries=0)
    draft = api.review(TOPIC, settings)
    assert draft.engine == "llm:smollm2" and draft.references
    assert all(s.origin == "extractive" for s in draft.sections)
    assert_citations_point_to_references(draft, settings)


@pytest.mark.slow
def test_llm_review_with_llama(bundled: Settings, llama_server: str) -> None:
    from rag import api

    # NOTE: a small context budget keeps each section's prompt to an abstract or two on 2 shared cores.
    settings = llm_settings(bundled, llama_server, llm_context_tokens=1024)
    draft = api.review(TOPIC, settings)
    assert draft.engine == "llm:smollm2" and draft.usage["prompt_tokens"] > 0
    assert len(draft.sections) >= 2 and all(s.heading.strip() for s in draft.sections)
    assert len({s.heading for s in draft.sections}) == len(draft.sections)
    assert_citations_point_to_references(draft, settings)
    assert write_review(draft, "md", None).startswith(f"# {draft.title}")


def test_a_title_has_one_colon() -> None:
    from rag.review import _title

    assert _title("low-bit quantization") == "Low-bit quantization: a literature review"
    topic = "Model compression: pruning and sparsity"
    assert _title(topic) == f"{topic} — a literature review"
