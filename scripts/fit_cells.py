"""Fit the models that fill comparison cells, with cross-validation: the sentence role model (rag/roles.py) and,
per default column, which sentence of an abstract informs it (CELLS in rag/tuned.py).

    python scripts/fit_cells.py

Data: rag/data/sentence_roles.jsonl (the 126 dev papers' abstract sentences, labelled blind by role and by whether they
speak of cost) and eval/compare_dev.jsonl (28 comparison requests written blind, with phrases from each abstract
that a good cell for each column would hold). The held-out requests (eval/compare_heldout.jsonl, on the other 42
papers) are never fitted on. Every model is cross-validated in five folds grouped by paper; the cell models are fitted
on role probabilities that are themselves out of fold, as they are for a paper the role model never saw. Last, the
cells are filled out of fold as the product fills them (rag.compare.choose_sentences).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))

from rag.compare import choose_sentences, role_columns, tidy  # noqa: E402
from rag.corpus import read_file  # noqa: E402
from rag.evaluate import fact_found  # noqa: E402
from rag.index import split_sentences  # noqa: E402
from rag.roles import ASPECT_ROLE, CELL_FEATURES, COLUMNS, ROLES, placement, read_labels  # noqa: E402
from rag.roles import C as ROLE_C  # noqa: E402
from rag.roles import cell_features as features_of  # noqa: E402

FOLDS = 5
CELL_C = 1.0  # sklearn's default; 0.1 and 10 gave top-1 rates within 0.02
EMPTIED = 0.05  # the share of dev cells with facts that the "not stated" level may empty
WORD_BUDGET = 45  # a second sentence joins a cell only if the two fit in this many words (the upper bound)


def out_of_fold_roles(records: list[dict[str, object]], c: float) -> np.ndarray:
    texts = [str(r["text"]) for r in records]
    groups = [r["paper"] for r in records]
    x = hstack(
        [
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(texts),
            csr_matrix([placement(int(r["i"]), int(r["of"])) for r in records]),  # type: ignore[call-overload]
        ]
    ).tocsr()
    roles = np.array([r["role"] if r["role"] in ROLES else "other" for r in records])
    cost = np.array([bool(r["efficiency"]) for r in records])
    cv = GroupKFold(FOLDS)
    model = LogisticRegression(C=c, solver="newton-cg", max_iter=3000)
    p_roles = cross_val_predict(model, x, roles, groups=groups, cv=cv, method="predict_proba")
    order = [sorted(set(roles)).index(role) for role in ROLES]
    p_cost = cross_val_predict(model, x, cost, groups=groups, cv=cv, method="predict_proba")[:, 1:]
    predicted = np.array(ROLES)[p_roles[:, order].argmax(axis=1)]
    per_role = {role: round(float((predicted[roles == role] == role).mean()), 2) for role in ROLES}
    print(f"  C={c:<5} role accuracy {float((predicted == roles).mean()):.3f} (recall {per_role}), "
          f"cost accuracy {float(((p_cost[:, 0] >= 0.5) == cost).mean()):.3f}")  # fmt: skip
    return np.hstack([p_roles[:, order], p_cost])


def main() -> int:
    records = read_labels()
    print(f"sentence roles: {len(records)} labelled sentences, {len({r['paper'] for r in records})} papers")
    for c in (0.3, 1.0, 3.0, 30.0):
        out_of_fold_roles(records, c)
    probs = out_of_fold_roles(records, ROLE_C)  # the chosen one, printed last
    by_sentence = {(r["paper"], int(r["i"])): probs[k] for k, r in enumerate(records)}  # type: ignore[call-overload]

    papers = {p.title: p for p in read_file(ROOT / "rag" / "data" / "trending-papers.txt").papers}
    requests = [json.loads(line) for line in (ROOT / "eval" / "compare_dev.jsonl").read_text().splitlines() if line]
    facts: dict[str, dict[str, list[str]]] = {}
    for rec in requests:
        for title, by_aspect in rec["facts"].items():
            facts.setdefault(papers[title].paper_id, {}).update(by_aspect)
    abstracts = {p.paper_id: split_sentences(p.abstract) for p in papers.values() if p.paper_id in facts}
    ids = sorted(facts)
    fold_of = {pid: k % FOLDS for k, pid in enumerate(ids)}
    print(f"\ncells: {len(ids)} papers of {len(requests)} dev requests, "
          f"{sum(len(f) for a in facts.values() for f in a.values())} facts")  # fmt: skip

    models: dict[str, LogisticRegression] = {}
    out_of_fold: dict[tuple[str, str], np.ndarray] = {}
    for aspect in ASPECT_ROLE:
        rows, labels, owner = [], [], []
        for pid in ids:
            if not facts[pid].get(aspect):
                continue
            sentences = abstracts[pid]
            p = np.stack([by_sentence[(pid, i)] for i in range(len(sentences))])
            rows.append(features_of(sentences, p, aspect))
            labels += [any(fact_found(f, s) for f in facts[pid][aspect]) for s in sentences]
            owner += [pid] * len(sentences)
        x, y, owner_a = np.vstack(rows), np.array(labels), np.array(owner)
        for k in range(FOLDS):
            test = np.array([fold_of[pid] == k for pid in owner_a])
            fitted = LogisticRegression(C=CELL_C, max_iter=3000).fit(x[~test], y[~test])
            for pid in (pid for pid in ids if fold_of[pid] == k):
                sentences = abstracts[pid]
                p = np.stack([by_sentence[(pid, i)] for i in range(len(sentences))])
                out_of_fold[(pid, aspect)] = fitted.predict_proba(features_of(sentences, p, aspect))[:, 1]
        models[aspect] = LogisticRegression(C=CELL_C, max_iter=3000).fit(x, y)
        column = COLUMNS.index(ASPECT_ROLE[aspect])
        top = [y[owner_a == pid][int(np.argmax(out_of_fold[(pid, aspect)]))] for pid in set(owner_a)]
        base = [y[owner_a == pid][int(np.argmax(x[owner_a == pid, column]))] for pid in set(owner_a)]
        print(f"  {aspect:32s} best sentence informs it: model {float(np.mean(top)):.3f}, "
              f"likeliest role alone {float(np.mean(base)):.3f} ({len(top)} papers)")  # fmt: skip

    print(
        f"\nSTATED_AT: a column is 'not stated' when its best sentence's P is under the level that empties "
        f"{EMPTIED:.0%} of the dev cells that have facts"
    )
    stated_at = {}
    for aspect in ASPECT_ROLE:
        with_facts = [float(out_of_fold[(pid, aspect)].max()) for pid in ids if facts[pid].get(aspect)]
        without = [float(out_of_fold[(pid, aspect)].max()) for pid in ids if not facts[pid].get(aspect)]
        stated_at[aspect] = float(np.quantile(with_facts, EMPTIED))
        emptied = np.mean([m < stated_at[aspect] for m in without]) if without else float("nan")
        print(f"  {aspect:32s} {stated_at[aspect]:.3f}; cells without facts emptied: {emptied:.2f} of {len(without)}")

    print("\nfacts in the right cell (dev, out of fold), by how cells are filled:")
    for second in (False, True):
        for exclusive in (False, True):
            hit = total = 0
            words: list[int] = []
            per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for pid in ids:
                sentences, used = abstracts[pid], set()
                for aspect in ASPECT_ROLE:
                    p = out_of_fold[(pid, aspect)]
                    if not facts[pid].get(aspect):
                        continue
                    ranked = [i for i in np.argsort(-p, kind="stable") if not (exclusive and i in used)]
                    chosen = ranked[:1]
                    if second and len(ranked) > 1 and p[ranked[1]] >= p[ranked[0]] / 2:
                        both = len(sentences[ranked[0]].split()) + len(sentences[ranked[1]].split())
                        chosen += [ranked[1]] if both <= WORD_BUDGET else []
                    used.update(chosen)
                    cell = " ".join(sentences[i] for i in sorted(chosen))
                    words.append(len(cell.split()))
                    for fact in facts[pid][aspect]:
                        ok = fact_found(fact, cell)
                        hit, total = hit + ok, total + 1
                        per[aspect][0] += ok
                        per[aspect][1] += 1
            detail = ", ".join(f"{a.split()[0]} {h / t:.2f}" for a, (h, t) in per.items())
            print(f"  second sentence {second!s:5} exclusive {exclusive!s:5}: {hit / total:.3f} "
                  f"({detail}); median cell {statistics.median(words)} words")  # fmt: skip

    # As the product fills them (rag.compare.choose_sentences), every default column of every paper at once: by the
    # cell models alone, and (as the product does) with a column stated when a sentence plays its role.
    for by_role in (False, True):
        hit = total = in_row = 0
        words = []
        for pid in ids:
            sentences = abstracts[pid]
            roles = role_columns(np.stack([by_sentence[(pid, i)] for i in range(len(sentences))])) if by_role else None
            chosen = choose_sentences(sentences, {a: out_of_fold[(pid, a)] for a in ASPECT_ROLE}, stated_at, roles)
            cells = {a: " ".join(tidy(sentences[i]) for i in sorted(c)) for a, c in chosen.items()}
            words += [len(cell.split()) for cell in cells.values() if cell]
            for aspect in (a for a in ASPECT_ROLE if facts[pid].get(a)):
                for fact in facts[pid][aspect]:
                    hit += fact_found(fact, cells[aspect])
                    in_row += any(fact_found(fact, cell) for cell in cells.values())
                    total += 1
        print(f"  as the product fills cells (stated by role too: {by_role}): {hit / total:.3f} in the right cell, "
              f"{in_row / total:.3f} in the row; median cell {statistics.median(words)} words")  # fmt: skip

    print("\nCELLS for rag/tuned.py (features: " + ", ".join(CELL_FEATURES) + "):")
    for aspect, model in models.items():
        weights = ", ".join(f"{w:.3f}" for w in model.coef_[0])
        bias = f"{model.intercept_[0]:.3f}"
        print(f'    "{aspect}": Logistic(\n        CELL_FEATURES,\n        ({weights}),\n        {bias},\n    ),')
    print("STATED_AT: " + ", ".join(f'"{a}": {v:.3f}' for a, v in stated_at.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
