"""Prove the enrolment refusal rules on labelled photos: what a rule refuses must
be a photo that would not have been recognised anyway.

    .venv/bin/python tests/benchmarks/quality_rules.py [--shared DIR] [--model PATH] [--threshold T] [--results MD]

Data: every person's photos in ../shared/faces and ../shared/faces-extra (no
person is in both), plus synthetic copies of each person's first two photos (shrunk first to a
face of at most 200 px, for time): Gaussian blur of increasing
sigma (in percent of the face width, so every face is blurred alike relative to
itself), darkening (the pixel values times a factor), and downscaling (face
width 80 .. 25 px, re-saved as JPEG quality 75, as a web thumbnail would be).

"Recognised" is what the terminal does with the photo: its embedding's nearest
person among every *other* original photo of both sets (nearest photo per
person) is its own person, within the threshold. A photo of someone with no
other photo cannot be recognised or not, and is left out.

For every rule and several limits the tables give how many photos the rule
refuses and how many of those would still have been recognised (the cost of the
rule: the shipped limit must make that 0), and how many it lets through that
are not recognised (what a stricter limit could still catch). Every sample is
measured exactly as examine_photo measures it (device/enrolment/photo_rules.py).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.results import default_results, provenance, write_results  # noqa: E402

SETS = ("faces", "faces-extra")
BLUR_PERCENT = (2, 3, 4, 6)  # sigma as % of the face box width
DARK_FACTORS = (0.2, 0.12, 0.07)
SMALL_WIDTHS = (45, 35, 25)  # face box width after downscaling, px
DEGRADED_PER_PERSON = 2  # the first photos of each person get the synthetic copies (time on a 2-core machine)
WORK_FACE_PX = (
    200  # larger photos are first shrunk to this face width for the copies (the copies are relative to the face)
)


@dataclass(frozen=True)
class Sample:
    source: str  # set/person/file of the original photo
    person: str  # set/person
    kind: str  # original, blur, dark, small
    level: float  # blur %, darkening factor or face width; 0 for originals
    faces: int  # faces detected
    face_px: float
    sharpness: float
    brightness: float
    embedding: np.ndarray | None


def labelled_photos(shared: Path) -> Iterator[tuple[str, Path]]:
    """(set/person, path) for every photo in every person folder of both sets."""
    for name in SETS:
        root = shared / name
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
                    yield f"{name}/{folder.name}", path


def degraded(image: np.ndarray, face_px: float) -> Iterator[tuple[str, float, np.ndarray]]:
    """The synthetic copies of one photo, each with its kind and level."""
    for pct in BLUR_PERCENT:
        yield "blur", pct, cv2.GaussianBlur(image, (0, 0), pct * face_px / 100)
    for factor in DARK_FACTORS:
        yield "dark", factor, (image.astype(np.float32) * factor).round().astype(np.uint8)
    for width in SMALL_WIDTHS:
        scale = width / face_px
        if scale < 0.9:
            h, w = image.shape[:2]
            small = cv2.resize(
                image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
            _, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 75])
            yield "small", width, cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def measure(image: np.ndarray, pipeline, source: str, person: str, kind: str, level: float) -> Sample:
    """The measures examine_photo takes, and the embedding, whatever the rules say."""
    from device.enrolment.photo_rules import face_quality

    boxes = pipeline.detect(image, still=True)
    if not boxes:
        return Sample(source, person, kind, level, 0, 0.0, 0.0, 0.0, None)
    box = boxes[0]
    quality = face_quality(image, box)
    embedding = pipeline.finding(image, box).embedding
    return Sample(source, person, kind, level, len(boxes), box.w, quality.sharpness, quality.brightness, embedding)


def collect(shared: Path, pipeline) -> list[Sample]:
    from device.camera.images import read_image

    samples = []
    done: dict[str, int] = defaultdict(int)
    for n, (person, path) in enumerate(labelled_photos(shared), 1):
        if n % 20 == 0:
            print(f"{n} photos measured", file=sys.stderr, flush=True)
        source = f"{path.parent.parent.name}/{path.parent.name}/{path.name}"
        image = read_image(path)
        original = measure(image, pipeline, source, person, "original", 0)
        samples.append(original)
        if original.embedding is None or done[person] >= DEGRADED_PER_PERSON:
            continue
        done[person] += 1
        face_px = original.face_px
        if face_px > WORK_FACE_PX:
            scale = WORK_FACE_PX / face_px
            h, w = image.shape[:2]
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            face_px = WORK_FACE_PX
        for kind, level, copy in degraded(image, face_px):
            samples.append(measure(copy, pipeline, source, person, kind, level))
    return samples


def distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    from device.vision.matcher import pairwise_distances

    return pairwise_distances(a, b, metric)


def recognised(samples: Sequence[Sample], metric: str, threshold: float) -> dict[int, bool]:
    """Sample index -> would the terminal recognise it (left out: no embedding, or
    nobody else of its person to be recognised against)."""
    refs = [s for s in samples if s.kind == "original" and s.embedding is not None]
    ref_vecs = np.stack([r.embedding for r in refs])
    ref_people = np.array([r.person for r in refs])
    ref_sources = np.array([r.source for r in refs])
    people = sorted(set(ref_people))
    out: dict[int, bool] = {}
    for i, s in enumerate(samples):
        if s.embedding is None:
            continue
        mask = ref_sources != s.source
        if not np.any(mask & (ref_people == s.person)):
            continue
        d = distances(s.embedding[None, :], ref_vecs, metric)[0]
        best = {p: float(d[mask & (ref_people == p)].min()) for p in people if np.any(mask & (ref_people == p))}
        nearest = min(best, key=lambda p: best[p])
        out[i] = nearest == s.person and best[nearest] <= threshold
    return out


@dataclass(frozen=True)
class RuleRow:
    limit: float
    refused: int
    refused_recognised: int  # the rule's cost: refused, yet would have been recognised
    passed_not_recognised: int
    examples: tuple[str, ...]  # refused yet recognised


def sweep(
    samples: Sequence[Sample], rec: dict[int, bool], value: Callable[[Sample], float], limits: Sequence[float]
) -> list[RuleRow]:
    """Refuse value < limit, for each limit, over the countable samples that have a face."""
    rows = []
    for limit in limits:
        refused = [i for i in rec if value(samples[i]) < limit]
        passed = [i for i in rec if value(samples[i]) >= limit]
        bad = [i for i in refused if rec[i]]
        examples = tuple(
            f"{samples[i].source} {samples[i].kind} {samples[i].level:g} ({value(samples[i]):.1f})" for i in bad[:3]
        )
        rows.append(RuleRow(limit, len(refused), len(bad), sum(1 for i in passed if not rec[i]), examples))
    return rows


def by_level(samples: Sequence[Sample], rec: dict[int, bool], kind: str, value: Callable[[Sample], float]) -> str:
    """How each synthetic degradation moves the measure and the recognition rate."""
    groups: dict[float, list[int]] = defaultdict(list)
    for i in rec:
        if samples[i].kind in (kind, "original"):
            groups[samples[i].level].append(i)
    unit = {"blur": "sigma % of face", "dark": "factor", "small": "face px"}[kind]
    lines = [f"| {unit} | photos | recognised | measure: min | median |", "|---|---|---|---|---|"]
    for level in sorted(groups, reverse=kind != "blur"):
        idx = groups[level]
        vals = np.array([value(samples[i]) for i in idx])
        name = "original" if level == 0 else f"{level:g}"
        lines.append(
            f"| {name} | {len(idx)} | {sum(rec[i] for i in idx)} | {vals.min():.1f} | {float(np.median(vals)):.1f} |"
        )
    return "\n".join(lines)


def rule_table(rows: Sequence[RuleRow], shipped: float) -> str:
    lines = [
        "| limit | refused | refused but recognised | passed, not recognised | e.g. |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (shipped)" if r.limit == shipped else ""
        lines.append(
            f"| {r.limit:g}{mark} | {r.refused} | {r.refused_recognised} | {r.passed_not_recognised} | {'; '.join(r.examples)} |"
        )
    return "\n".join(lines)


def duplicate_section(samples: Sequence[Sample], pipeline, shared: Path, metric: str, threshold: float, rules) -> str:
    """Re-saved copies (half size, JPEG 75) must measure under the duplicate limit;
    two different photos of one person never may (refusing one loses a real photo)."""
    from device.camera.images import read_image

    limit = rules.duplicate_fraction * threshold
    copies = []
    for person, path in labelled_photos(shared):
        image = read_image(path)
        h, w = image.shape[:2]
        half = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        _, jpeg = cv2.imencode(".jpg", half, [cv2.IMWRITE_JPEG_QUALITY, 75])
        copy = measure(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), pipeline, str(path), person, "copy", 0)
        source = f"{path.parent.parent.name}/{path.parent.name}/{path.name}"
        orig = next(s for s in samples if s.source == source and s.kind == "original")
        if copy.embedding is not None and orig.embedding is not None:
            copies.append(float(distances(copy.embedding[None, :], orig.embedding[None, :], metric)[0, 0]))
    originals = [s for s in samples if s.kind == "original" and s.embedding is not None]
    distinct = []
    for a in range(len(originals)):
        for b in range(a + 1, len(originals)):
            if originals[a].person == originals[b].person:
                distinct.append(
                    float(distances(originals[a].embedding[None, :], originals[b].embedding[None, :], metric)[0, 0])
                )
    copies_arr, distinct_arr = np.array(copies), np.array(distinct)
    return (
        f"Limit: {rules.duplicate_fraction:g} x threshold = {limit:.3f}. "
        f"Re-saved copies (half size, JPEG 75) of {len(copies_arr)} photos: distance to the original median "
        f"{np.median(copies_arr):.3f}, max {copies_arr.max():.3f}; {int((copies_arr < limit).sum())} of {len(copies_arr)} "
        f"refused as duplicates. Different photos of one person ({len(distinct_arr)} pairs): min distance "
        f"{distinct_arr.min():.3f}; **{int((distinct_arr < limit).sum())} refused** (a refused different photo would be "
        "a recognisable photo lost; a refused copy loses nothing, its twin is enrolled)."
    )


def not_alike_section(samples: Sequence[Sample], metric: str, threshold: float, rules) -> str:
    """Each person's photos enrolled together, as on a stick; then with one photo of the
    next person slipped in (a misnamed file)."""
    from device.enrolment.photo_rules import Outcome, PhotoResult
    from device.enrolment.review import review_photos

    originals = [s for s in samples if s.kind == "original" and s.embedding is not None]
    people: dict[str, list[Sample]] = defaultdict(list)
    for s in originals:
        people[s.person].append(s)
    names = sorted(people)

    def result(s: Sample, person: str) -> PhotoResult:
        return PhotoResult(Path(s.source), person, Outcome.ENROLLED, embedding=s.embedding)

    def own_match(vec: np.ndarray, person: str, exclude: str) -> bool:
        others = [s for s in people[person] if s.source != exclude]
        d = distances(vec[None, :], np.stack([s.embedding for s in others]), metric)[0]
        return bool(others) and float(d.min()) <= threshold

    refused_own, refused_own_rec, caught, swaps = 0, 0, 0, 0
    for k, person in enumerate(names):
        if len(people[person]) < 2:
            continue
        out, _ = review_photos([result(s, person) for s in people[person]], metric, threshold, rules)
        for s, r in zip(people[person], out, strict=True):
            if r.outcome is Outcome.NOT_ALIKE:
                refused_own += 1
                refused_own_rec += own_match(s.embedding, person, s.source)
        intruder = people[names[(k + 1) % len(names)]][0]
        out, _ = review_photos(
            [result(s, person) for s in people[person]] + [result(intruder, person)], metric, threshold, rules
        )
        swaps += 1
        caught += out[-1].outcome is Outcome.NOT_ALIKE
    return (
        f"Each person's own photos enrolled together: {refused_own} refused as not like the others, "
        f"{refused_own_rec} of them within the threshold of one of their own person's photos (by the rule's "
        f"definition a refused photo matches none of them). With one photo of another person slipped in "
        f"({swaps} people): {caught} intruders refused."
    )


def report(samples: Sequence[Sample], rec: dict[int, bool], rules, threshold: float, extra: Sequence[str]) -> str:
    originals = [s for s in samples if s.kind == "original"]
    several = sum(1 for s in originals if s.faces > 1)
    parts = [
        f"Threshold {threshold:g}; {len(originals)} labelled photos ({', '.join(SETS)}), {len(samples)} samples with "
        f"the synthetic copies, {len(rec)} of them countable (a face, and another photo of the person).",
        "",
        "### too blurry (`enrol.min_sharpness`, a refusal)",
        "",
        by_level(samples, rec, "blur", lambda s: s.sharpness),
        "",
        rule_table(
            sweep(samples, rec, lambda s: s.sharpness, (2, 4, 6, 8, 10, 15, 20, 30)),
            rules.min_sharpness,
        ),
        "",
        "### dark photo (`enrol.min_brightness`, a warning: it cannot refuse only unrecognised photos)",
        "",
        by_level(samples, rec, "dark", lambda s: s.brightness),
        "",
        rule_table(sweep(samples, rec, lambda s: s.brightness, (5, 8, 10, 15, 20, 35, 50)), rules.min_brightness),
        "",
        "### small face (`enrol.min_face_px`, a warning: it cannot refuse only unrecognised photos)",
        "",
        by_level(samples, rec, "small", lambda s: s.face_px),
        "",
        rule_table(sweep(samples, rec, lambda s: s.face_px, (25, 30, 35, 40, 45, 60)), rules.min_face_px),
        "",
        *extra,
        "",
        "### several faces (a refusal)",
        "",
        f"{several} of {len(originals)} labelled photos hold more than one face (the largest is used when the next is "
        f"narrower than {rules.dominance:g} of it). This rule is about identity, not quality: with two faces of similar "
        "size nobody can tell which person the name belongs to, and enrolling the wrong one makes wrong-person records.",
    ]
    return "\n".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = Path(os.environ.get("CLOCKFACE_SHARED") or REPO.parent / "shared")
    parser.add_argument("--shared", type=Path, default=default_shared)
    parser.add_argument("--model", type=Path, default=None, help="default: the configured model")
    parser.add_argument("--threshold", type=float, default=None, help="default: the model's")
    parser.add_argument("--results", type=Path, default=default_results(__file__))
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep the measured samples here (pickle) and reuse them"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from device.config import load_config
    from device.terminal.assembly import load_model

    config = load_config(None, os.environ)
    model = load_model(config, args.model)
    rules = config.enrol
    threshold = float(args.threshold if args.threshold is not None else model.threshold)
    metric = model.card.metric
    if args.cache is not None and args.cache.is_file():
        samples = pickle.loads(args.cache.read_bytes())
    else:
        samples = collect(args.shared, model.pipeline)
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps(samples))
    rec = recognised(samples, metric, threshold)
    extra = [
        "### duplicate photo (`enrol.duplicate_fraction`, a refusal)",
        "",
        duplicate_section(samples, model.pipeline, args.shared, metric, threshold, rules),
        "",
        "### not like the others (a refusal)",
        "",
        not_alike_section(samples, metric, threshold, rules),
    ]
    markdown = report(samples, rec, rules, threshold, extra)
    print(markdown)
    write_results(args.results, "## Enrolment rules on labelled photos\n\n" + markdown, provenance(__file__))
    print(f"\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
