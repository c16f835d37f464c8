"""What each sentence of an abstract does: sets the scene, states the problem, describes the method, reports a
result; and whether it speaks of cost (speed, memory, energy, money).

The model is fitted when first needed, from sentences labelled by hand: rag/data/sentence_roles.jsonl holds the 1,051
sentences of the 126 dev papers' abstracts, labelled blind (from the abstracts alone) by two helper sessions. A
TF-IDF of words and word pairs plus the sentence's place in its abstract feed a multinomial logistic regression;
five folds grouped by paper give 0.78 accuracy over the five roles and 0.84 on "speaks of cost"
(scripts/fit_cells.py prints these). Hand labels, not cue lists: "we propose" and "achieves" are learned, and so
are the thousand other ways abstracts say them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import DATA
from rag.text import has_figure, leans_on_previous

LABELS = DATA / "sentence_roles.jsonl"
ROLES = ("background", "problem", "method", "result", "other")
COLUMNS = (*ROLES, "cost")  # what `RoleModel.predict` returns, one column each
C = 10.0  # inverse regularisation, chosen by scripts/fit_cells.py from 0.3, 1, 3, 10, 30 (grouped five-fold CV)


def placement(index: int, count: int) -> list[float]:
    """Where a sentence sits: its relative position (0 first, 1 last), and whether it is the first or the last."""
    return [index / max(count - 1, 1), float(index == 0), float(index == count - 1)]


class RoleModel:
    """Role and cost probabilities of the sentences of one abstract."""

    def __init__(self, records: Sequence[dict[str, object]]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        texts = [str(r["text"]) for r in records]
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        places = [placement(int(str(r["i"])), int(str(r["of"]))) for r in records]
        x = _stack(self.vectorizer.fit_transform(texts), places)
        # NOTE: "limitation" has 4 of the 1,051 labels: too few to learn, so it joins "other"; the limitations
        # column is filled from its own cue words (rag.compare).
        roles = [r["role"] if r["role"] in ROLES else "other" for r in records]
        # NOTE: newton-cg reaches the same optimum as the default lbfgs in 0.1 s instead of 0.9 s, paid by the first
        # comparison or review of every process.
        self.roles = LogisticRegression(C=C, solver="newton-cg", max_iter=3000).fit(x, roles)
        self.cost = LogisticRegression(C=C, solver="newton-cg", max_iter=3000).fit(
            x, [bool(r["efficiency"]) for r in records]
        )
        self._order = [list(self.roles.classes_).index(role) for role in ROLES]

    def predict(self, sentences: Sequence[str]) -> np.ndarray:
        """One row per sentence (in abstract order): P(each role) in ROLES order, then P(speaks of cost)."""
        return self.predict_many([sentences])[0]

    def predict_many(self, abstracts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """`predict` of the sentences of each of many abstracts, in one pass."""
        texts = [s for sentences in abstracts for s in sentences]
        if not texts:
            return [np.zeros((0, len(COLUMNS))) for _ in abstracts]
        places = [placement(i, len(sentences)) for sentences in abstracts for i in range(len(sentences))]
        x = _stack(self.vectorizer.transform(texts), places)
        probs = np.hstack([self.roles.predict_proba(x)[:, self._order], self.cost.predict_proba(x)[:, 1:]])
        return np.split(probs, np.cumsum([len(sentences) for sentences in abstracts])[:-1])


def _stack(words: Any, places: list[list[float]]) -> Any:
    from scipy.sparse import csr_matrix, hstack

    return hstack([words, csr_matrix(places)]).tocsr()


def read_labels(path: Path = LABELS) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@lru_cache(maxsize=1)
def role_model() -> RoleModel:
    """The model fitted on every labelled sentence, once per process."""
    return RoleModel(read_labels())


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """A digest of what the role model's predictions depend on: its labels and this module. Ingest keeps each
    sentence's predictions in its paper's record (`Paper.sentence_roles`), so the index's name includes it
    (rag.config): labels or a model that change give a new index, filled again from the earlier one's records."""
    import hashlib

    return hashlib.sha256(LABELS.read_bytes() + Path(__file__).read_bytes()).hexdigest()[:16]


# --- which sentence fills a comparison cell ---------------------------------------------------------------------

ASPECT_ROLE = {
    "problem addressed": "problem",
    "approach": "method",
    "evaluation and reported results": "result",
    "efficiency/cost claims": "cost",
}
CELL_FEATURES = (
    "P(background)",
    "P(problem)",
    "P(method)",
    "P(result)",
    "P(other)",
    "P(cost)",
    "position",
    "first sentence",
    "likeliest for the column's role",
    "second likeliest",
    "states a figure",
    "leans on the previous sentence",
    "length (words / 60, at most 1)",
    "says we or our",
)
_WE = re.compile(r"\b(?:we|our)\b", re.IGNORECASE)


def cell_features(sentences: Sequence[str], probs: np.ndarray, aspect: str) -> np.ndarray:
    """CELL_FEATURES of each sentence of one abstract for one default column; `probs` from `RoleModel.predict`."""
    key = probs[:, COLUMNS.index(ASPECT_ROLE[aspect])]
    rank = np.empty(len(sentences))
    rank[np.argsort(-key, kind="stable")] = np.arange(len(sentences))
    rows = [
        [
            *probs[i],
            *placement(i, len(sentences))[:2],
            float(rank[i] == 0),
            float(rank[i] == 1),
            float(has_figure(text)),
            float(leans_on_previous(text)),
            min(len(text.split()) / 60, 1.0),
            float(bool(_WE.search(text))),
        ]
        for i, text in enumerate(sentences)
    ]
    return np.array(rows, dtype=np.float64).reshape(len(sentences), len(CELL_FEATURES))
