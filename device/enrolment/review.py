"""Enrolment rules that need all photos at once, in the model's own metric and
threshold: duplicate photos, one person's photos that do not look alike, two
names that look like the same person, and the closest pair of different
people (threshold advice). Pure functions over embeddings.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.enrolment.photo_rules import EnrolRules, Outcome, PhotoResult
from device.vision.matcher import pairwise_distances
from gallery.store import Template

# "Someone else?" asks whether two photos can be one person, not whether the
# terminal would accept them: the shipped threshold is chosen for false accepts
# (strict), and same-person pairs reach past it. 1.2 x the threshold (0.61 at
# 0.51) is above the largest same-person distance of both labelled sets (0.590,
# tests/benchmarks/derive_threshold.py, MTCNN front end, 2026-12-01) and below
# all but 22 of their 14,083 different-person pairs (within 0.56).
NOT_ALIKE_FACTOR = 1.2


def relative_name(path: Path, root: Path | None) -> str:
    """How reports name a photo: relative to the photo folder, else by file name."""
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).name


# --- all photos together -------------------------------------------------------


@dataclass(frozen=True)
class LookAlike:
    """Two names whose photos the model takes for one person."""

    a: str
    b: str
    distance: float
    photo_a: str
    photo_b: str


def review_photos(
    results: Sequence[PhotoResult],
    metric: str,
    threshold: float,
    rules: EnrolRules,
    others: Sequence[Template] = (),
    root: Path | None = None,
) -> tuple[list[PhotoResult], list[LookAlike]]:
    """The rules that need every photo: near-identical duplicates and photos that do
    not look like the rest of their person's photos (not enrolled when a majority
    disagrees with them, else a warning), and names that look like someone else's
    (a warning on each photo, plus the pairs). `others` are templates of people
    already in the gallery who stay there (add mode)."""
    out = list(results)

    def label(path: Path) -> str:
        return relative_name(path, root)

    by_person: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(out):
        if r.ok:
            by_person[r.person].append(i)
    warn: dict[int, list[str]] = defaultdict(list)

    for person, idx in by_person.items():
        vecs = np.stack([out[i].vector for i in idx])
        d = pairwise_distances(vecs, vecs, metric)
        # Near-identical copies: keep the first, drop the rest.
        kept: list[int] = []
        for k, i in enumerate(idx):
            twins = [j for j in kept if d[k, idx.index(j)] < rules.duplicate_fraction * threshold]
            if twins:
                j = twins[0]
                out[i] = dataclasses.replace(
                    out[i],
                    outcome=Outcome.DUPLICATE,
                    detail=f"nearly identical to {label(out[j].path)} (distance {d[k, idx.index(j)]:.2f})",
                )
            else:
                kept.append(i)
        by_person[person] = kept
        if len(kept) < 2:
            continue
        pos = [idx.index(i) for i in kept]
        dk = d[np.ix_(pos, pos)]
        np.fill_diagonal(dk, np.inf)
        matches = (dk <= NOT_ALIKE_FACTOR * threshold).sum(axis=1)
        if len(kept) >= 3 and matches.max() > 0:
            for k, i in enumerate(kept):
                if matches[k] == 0:
                    out[i] = dataclasses.replace(
                        out[i],
                        outcome=Outcome.NOT_ALIKE,
                        detail=f"does not look like {person}'s other photos (nearest {dk[k].min():.2f}, limit {NOT_ALIKE_FACTOR * threshold:.2f}): someone else?",
                    )
            by_person[person] = [i for k, i in enumerate(kept) if matches[k] > 0]
        else:
            for k, i in enumerate(kept):
                if matches[k] == 0:
                    warn[i].append(
                        f"does not look like {person}'s other photo{'s' if len(kept) > 2 else ''} "
                        f"(nearest {dk[k].min():.2f}, limit {NOT_ALIKE_FACTOR * threshold:.2f}): is one of them someone else?"
                    )

    # Different names, same face? Compare each enrolled photo with every other person.
    # (person, photo label, embedding, index into `out` or None for a gallery template)
    entries: list[tuple[str, str, np.ndarray, int | None]] = [
        (out[i].person, label(out[i].path), out[i].vector, i) for idx in by_person.values() for i in idx
    ]
    entries += [(t.person, t.photo, t.embedding, None) for t in others if t.person not in by_person]
    pairs: dict[tuple[str, str], LookAlike] = {}
    nearest: dict[tuple[int, str], tuple[float, int]] = {}  # (photo, other person) -> (distance, entry)
    if len(entries) > 1:
        d = pairwise_distances(np.stack([e[2] for e in entries]), np.stack([e[2] for e in entries]), metric)
        names = [e[0] for e in entries]
        for a in range(len(entries)):
            for b in range(a + 1, len(entries)):
                if names[a] == names[b] or d[a, b] > threshold:
                    continue
                low, high = sorted((names[a], names[b]))
                key = (low, high)
                if key not in pairs or d[a, b] < pairs[key].distance:
                    first, second = (a, b) if names[a] == key[0] else (b, a)
                    pairs[key] = LookAlike(key[0], key[1], float(d[a, b]), entries[first][1], entries[second][1])
                for me, other in ((a, b), (b, a)):
                    photo = entries[me][3]
                    if photo is not None and d[a, b] < nearest.get((photo, names[other]), (np.inf, -1))[0]:
                        nearest[(photo, names[other])] = (float(d[a, b]), other)
        # One line per photo and look-alike person: the closest of their photos.
        for (i, name), (dist, other) in sorted(nearest.items(), key=lambda kv: kv[1][0]):
            twin = entries[other][3]
            same = (
                " - the very same file"
                if out[i].sha256 and twin is not None and out[twin].sha256 == out[i].sha256
                else ""
            )
            warn[i].append(
                f"looks like {name} ({entries[other][1]}, distance {dist:.2f}){same}: the same person under two names?"
            )
    # A photo dropped as "not like the others": say whose photo it seems to be.
    for i, r in enumerate(out):
        if r.outcome is Outcome.NOT_ALIKE and entries:
            d = pairwise_distances(r.vector[None, :], np.stack([e[2] for e in entries]), metric)[0]
            d[[e[0] == r.person for e in entries]] = np.inf
            k = int(np.argmin(d))
            if d[k] <= threshold:
                out[i] = dataclasses.replace(
                    r, detail=f"{r.detail} It looks like {entries[k][0]} ({entries[k][1]}, distance {d[k]:.2f})."
                )
    for i, messages in warn.items():
        if out[i].ok:
            out[i] = dataclasses.replace(out[i], warnings=out[i].warnings + tuple(dict.fromkeys(messages)))
    return out, sorted(pairs.values(), key=lambda p: p.distance)


@dataclass(frozen=True)
class ClosestPair:
    """Threshold advice: the two different people the gallery holds closest together."""

    a: str
    b: str
    distance: float
    threshold: float
    photo_a: str
    photo_b: str

    @property
    def confused(self) -> bool:
        return self.distance <= self.threshold

    @property
    def margin(self) -> float:
        return self.distance - self.threshold

    def advice(self) -> str:
        head = f"closest pair of different people: {self.a} and {self.b}, distance {self.distance:.3f} ({self.photo_a} / {self.photo_b})"
        if self.confused:
            return (
                f"{head}. WARNING: at the threshold {self.threshold:g} the terminal can take one for the other; "
                f"if they really are two people, add clearer photos of both or lower recognition.threshold below {self.distance:.2f}"
            )
        if self.margin < 0.1 * self.threshold:
            return f"{head}, only {self.margin:.3f} above the threshold {self.threshold:g}: they may be mixed up in poor light"
        return f"{head}, safely above the threshold {self.threshold:g}"


def closest_pair(templates: Sequence[Template], metric: str, threshold: float) -> ClosestPair | None:
    people = sorted({t.person for t in templates})
    if len(people) < 2:
        return None
    vecs = np.stack([t.embedding for t in templates])
    d = pairwise_distances(vecs, vecs, metric)
    names = np.array([t.person for t in templates])
    d[names[:, None] == names[None, :]] = np.inf
    a, b = np.unravel_index(int(np.argmin(d)), d.shape)
    ta, tb = sorted((templates[int(a)], templates[int(b)]), key=lambda t: t.person)
    return ClosestPair(ta.person, tb.person, float(d[a, b]), float(threshold), ta.photo, tb.photo)
