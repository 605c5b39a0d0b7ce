"""Nearest-person matching against the whole gallery in one matrix product.

Per-person work (normalising, squared norms) is done once when the gallery is
loaded, so matching a probe is one (N, D) x (D,) product whatever the metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Metric = Literal["cosine", "euclidean"]
TemplateRule = Literal["nearest", "mean"]


@dataclass(frozen=True)
class Match:
    person: str | None  # None: nobody within the threshold
    distance: float  # to the nearest gallery entry (inf for an empty gallery)
    nearest: str | None  # nearest person even when beyond the threshold

    @property
    def known(self) -> bool:
        return self.person is not None


class Matcher:
    """Gallery embeddings of one model; several rows per person are allowed."""

    def __init__(self, names: list[str], embeddings: np.ndarray, metric: Metric, threshold: float) -> None:
        if len(names) != len(embeddings):
            raise ValueError("one name per gallery embedding")
        self.metric = metric
        self.threshold = float(threshold)
        self.names = list(names)
        self._names = np.array(self.names, dtype=object)
        g = np.asarray(embeddings, dtype=np.float32)
        g = g.reshape(len(names), -1) if len(names) else g.reshape(0, g.shape[-1] if g.ndim else 0)
        if metric == "cosine":
            norms = np.linalg.norm(g, axis=1, keepdims=True)
            self._g = g / np.maximum(norms, 1e-12)
        elif metric == "euclidean":
            self._g = g
            self._sq = np.einsum("ij,ij->i", g, g)
        else:
            raise ValueError(f"unknown metric {metric!r}")

    def __len__(self) -> int:
        return len(self.names)

    def distances(self, query: np.ndarray) -> np.ndarray:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if self.metric == "cosine":
            return 1.0 - self._g @ (q / max(float(np.linalg.norm(q)), 1e-12))
        return np.sqrt(np.maximum(self._sq - 2.0 * (self._g @ q) + float(q @ q), 0.0))

    def match(self, query: np.ndarray, exclude: str | None = None) -> Match:
        """Nearest person within the threshold, else unknown. `exclude` drops one
        person's rows (leave-one-person-out impostor trials in evaluation)."""
        if not self.names:
            return Match(None, float("inf"), None)
        d = self.distances(query)
        if exclude is not None:
            d = np.where(self._names == exclude, np.inf, d)
        i = int(np.argmin(d))
        dist = float(d[i])
        if not np.isfinite(dist):
            return Match(None, float("inf"), None)
        nearest = self.names[i]
        return Match(nearest if dist <= self.threshold else None, dist, nearest)


def combine_templates(vectors: list[np.ndarray], rule: TemplateRule) -> list[np.ndarray]:
    """A person's gallery rows from their enrolment vectors (pure).

    "nearest" keeps every vector (the matcher takes the nearest row per person);
    "mean" keeps one row, the mean of the unit-normalised vectors scaled back to
    their mean length, so euclidean distances stay on the model's scale.

    The terminal uses "mean". Measured with `clockface eval --enrol-photos 2` at
    the shipped threshold 0.51 (dlib, 2026-12-01; tests/benchmarks/derive_threshold.py):
    ../shared/faces TAR 1.000 vs 0.920 for nearest, ../shared/faces-extra 0.828
    vs 0.793, zero false accepts either way, and TAR at zero false accepts 0.84
    vs 0.79 on faces-extra. Averaging cancels what differs between one person's
    photos (light, pose) and keeps what they share.
    """
    if rule == "nearest" or len(vectors) < 2:
        return list(vectors)
    if rule != "mean":
        raise ValueError(f"unknown template rule {rule!r}")
    stacked = np.stack([np.asarray(v, np.float64).reshape(-1) for v in vectors])
    norms = np.linalg.norm(stacked, axis=1, keepdims=True)
    mean = (stacked / np.maximum(norms, 1e-12)).mean(axis=0)
    mean *= float(norms.mean()) / max(float(np.linalg.norm(mean)), 1e-12)
    return [mean.astype(np.float32)]


def one_row_per_person(
    names: list[str], embeddings: np.ndarray, rule: TemplateRule = "mean"
) -> tuple[list[str], np.ndarray]:
    """A gallery's rows combined per person by `rule`, in first-seen order (pure)."""
    grouped: dict[str, list[np.ndarray]] = {}
    for name, vector in zip(names, np.asarray(embeddings), strict=True):
        grouped.setdefault(name, []).append(vector)
    out_names = [n for n, vs in grouped.items() for _ in combine_templates(vs, rule)]
    rows = [v for vs in grouped.values() for v in combine_templates(vs, rule)]
    if not rows:
        return [], np.zeros((0, np.asarray(embeddings).shape[-1]), np.float32)
    return out_names, np.stack(rows).astype(np.float32)


def pairwise_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """(len(a), len(b)) distances in a metric: the plain form of what Matcher
    does with its per-person work precomputed (a test keeps the two equal)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    if metric == "cosine":
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return 1.0 - an @ bn.T
    if metric == "euclidean":
        sq = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
        return np.sqrt(np.maximum(sq, 0.0))
    raise ValueError(f"unknown metric {metric!r}")
