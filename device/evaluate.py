"""`clockface eval`: the recognition accuracy protocol of ../shared/notes/eval-protocol.md.

Enrolment uses `examine_photo` and probes use the pipeline's largest face and
the terminal's `Matcher`, so the numbers describe what the terminal does.

Two measurements go beyond the protocol without changing its default: the
TAR-at-FAR curve (`--curve`: the strict points a threshold is chosen from) and
enrolment from K photos per person (`--enrol-photos K`), which shows what a
second enrolment photo wins back at a strict threshold.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from device.camera.images import OPENCV_SUFFIXES, ImageReadError, read_image
from device.enrolment.photo_rules import EnrolRules, examine_photo
from device.vision.faces import FacePipeline
from device.vision.matcher import Matcher, Metric, TemplateRule, combine_templates
from gallery.layout import Photo, display_name


@dataclass(frozen=True)
class Probe:
    person: str
    path: Path
    genuine: bool  # an enrolled person's own photo (else a stranger's)
    embedding: np.ndarray | None  # None: no face found


CURVE_FARS = (0.0, 0.01, 0.02, 0.05)  # the strict points that decide an attendance threshold


@dataclass(frozen=True)
class CurvePoint:
    max_far: float
    threshold: float | None  # None: no threshold keeps FAR this low and accepts anyone
    true_accept_rate: float


@dataclass
class EvalReport:
    threshold: float
    metric: str
    people_enrolled: int
    strangers: int
    enrolment_failures: list[str]
    genuine_probes: int
    genuine_outcomes: dict[str, int]
    true_accept_rate: float
    impostor_trials: int
    false_accepts: int
    false_accept_rate: float
    best_threshold_far_1pct: float | None
    tar_at_far_1pct: float
    seconds_per_image: float
    images: int
    false_accept_details: list[str] = field(default_factory=list)
    enrol_photos: int = 1
    templates: str = "mean"
    curve: list[CurvePoint] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def people_folders(root: Path) -> dict[str, list[Path]]:
    """Person folder -> sorted image files; `_`-prefixed folders are not people."""
    people = {}
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in OPENCV_SUFFIXES)
        if files:
            people[folder.name] = files
    return people


def largest_face_embedding(path: Path, pipeline: FacePipeline) -> np.ndarray | None:
    try:
        image = read_image(path)
    except ImageReadError:
        return None
    found = pipeline.find(image, still=True, limit=1)
    return found[0].embedding if found else None


@dataclass(frozen=True)
class Trials:
    """Distances of every genuine and impostor trial, for scoring at any threshold."""

    genuine: list[tuple[str | None, float]]  # (nearest person, distance); None = no face / no gallery
    genuine_truth: list[str]
    impostor: list[float]  # nearest remaining distance (inf = no face)


def collect_trials(
    gallery: dict[str, list[np.ndarray]], probes: list[Probe], metric: Metric, templates: TemplateRule = "mean"
) -> Trials:
    names = [n for n in sorted(gallery) for _ in combine_templates(gallery[n], templates)]
    rows = [v for n in sorted(gallery) for v in combine_templates(gallery[n], templates)]
    matcher = Matcher(names, np.stack(rows) if rows else np.zeros((0, 1)), metric, 0.0)
    genuine: list[tuple[str | None, float]] = []
    truth: list[str] = []
    impostor: list[float] = []
    for probe in probes:
        if probe.genuine:
            truth.append(probe.person)
            if probe.embedding is None:
                genuine.append((None, float("inf")))
                impostor.append(float("inf"))
                continue
            m = matcher.match(probe.embedding)
            genuine.append((m.nearest, m.distance))
            impostor.append(matcher.match(probe.embedding, exclude=probe.person).distance)
        else:
            impostor.append(float("inf") if probe.embedding is None else matcher.match(probe.embedding).distance)
    return Trials(genuine, truth, impostor)


def score(trials: Trials, threshold: float) -> tuple[Counter, int]:
    """Genuine outcomes and false accepts at one threshold (pure)."""
    outcomes: Counter = Counter({"correct": 0, "wrong": 0, "rejected": 0, "no face": 0})
    for (nearest, dist), person in zip(trials.genuine, trials.genuine_truth, strict=True):
        if nearest is None and not np.isfinite(dist):
            outcomes["no face"] += 1
        elif dist > threshold:
            outcomes["rejected"] += 1
        else:
            outcomes["correct" if nearest == person else "wrong"] += 1
    false_accepts = sum(1 for d in trials.impostor if d <= threshold)
    return outcomes, false_accepts


def best_threshold(trials: Trials, max_far: float = 0.01) -> tuple[float | None, float]:
    """Highest-TAR threshold whose FAR stays <= max_far on this set."""
    n_imp = max(len(trials.impostor), 1)
    n_gen = max(len(trials.genuine), 1)
    candidates = sorted(
        {d for _, d in trials.genuine if np.isfinite(d)} | {d for d in trials.impostor if np.isfinite(d)}
    )
    best: tuple[float | None, float] = (None, 0.0)
    for t in candidates:
        outcomes, fa = score(trials, t)
        if fa / n_imp <= max_far and outcomes["correct"] / n_gen > best[1]:
            best = (t, outcomes["correct"] / n_gen)
    return best


def tar_at_far_curve(trials: Trials, fars: tuple[float, ...] = CURVE_FARS) -> list[CurvePoint]:
    """TAR at the best threshold for each FAR bound (pure)."""
    return [CurvePoint(far, *best_threshold(trials, far)) for far in fars]


def split_person(files: list[Path], enrol_photos: int) -> tuple[list[Path], list[Path], bool]:
    """(enrolment photos, probes, enrolled?) for one person's sorted files.

    The protocol: >= 3 photos enrols from the first. With K enrolment photos a
    person needs more than K (and still >= 3), so K=1 is exactly the protocol
    and every K keeps at least one genuine probe per enrolled person.
    """
    if len(files) >= max(3, enrol_photos + 1):
        return files[:enrol_photos], files[enrol_photos:], True
    return [], files, False


def evaluate(
    root: Path,
    pipeline: FacePipeline,
    metric: Metric,
    threshold: float,
    rules: EnrolRules | None = None,
    progress: Callable[[Path], None] | None = None,
    enrol_photos: int = 1,
    templates: TemplateRule = "mean",
) -> EvalReport:
    if enrol_photos < 1:
        raise ValueError("enrol_photos must be at least 1")
    rules = rules or EnrolRules()
    started = time.perf_counter()
    images = 0
    gallery: dict[str, list[np.ndarray]] = {}
    failures: list[str] = []
    probes: list[Probe] = []
    enrolled_count = strangers = 0
    for person, files in people_folders(root).items():
        enrol_files, probe_files, genuine = split_person(files, enrol_photos)
        if genuine:
            enrolled_count += 1
            for path in enrol_files:
                result = examine_photo(Photo(display_name(person), path), pipeline, rules)
                images += 1
                if progress:
                    progress(path)
                if result.ok:
                    gallery.setdefault(person, []).append(result.vector)
                else:
                    failures.append(f"{person}/{path.name}: {result.outcome.value}")
        else:
            strangers += 1
        for path in probe_files:
            probes.append(Probe(person, path, genuine, largest_face_embedding(path, pipeline)))
            images += 1
            if progress:
                progress(path)
    elapsed = time.perf_counter() - started
    trials = collect_trials(gallery, probes, metric, templates)
    outcomes, false_accepts = score(trials, threshold)
    n_gen, n_imp = len(trials.genuine), len(trials.impostor)
    best_t, best_tar = best_threshold(trials)
    curve = tar_at_far_curve(trials)
    # collect_trials makes exactly one impostor trial per probe, in probe order.
    fa_details = [f"{p.person}/{p.path.name}" for p, d in zip(probes, trials.impostor, strict=True) if d <= threshold]
    return EvalReport(
        threshold=threshold,
        metric=metric,
        people_enrolled=enrolled_count,
        strangers=strangers,
        enrolment_failures=failures,
        genuine_probes=n_gen,
        genuine_outcomes=dict(outcomes),
        true_accept_rate=outcomes["correct"] / n_gen if n_gen else 0.0,
        impostor_trials=n_imp,
        false_accepts=false_accepts,
        false_accept_rate=false_accepts / n_imp if n_imp else 0.0,
        best_threshold_far_1pct=best_t,
        tar_at_far_1pct=best_tar,
        seconds_per_image=elapsed / images if images else 0.0,
        images=images,
        false_accept_details=fa_details,
        enrol_photos=enrol_photos,
        templates=templates,
        curve=curve,
    )
