"""Per-visit decisions: k-of-n votes (device/terminal/tracking.py) against the mean of a track's embeddings.

    python tests/benchmarks/track_rule.py [--config FILE] [--threshold T] [--embeddings CACHE.npz]

Why: a strict threshold costs per-photo TAR; the terminal sees a person in many
frames and must win it back per visit. Two rules decide a track from its first
n embeddings (n = recognition.confirm_n):
- k-of-n: k of the first n matches name one person (what the terminal does);
- mean:   the mean of the track's unit-normalised embeddings, scaled back to
          their mean length, matched once (`device.vision.matcher.combine_templates`).

Measured on
1. the shared clip (../shared/faces/_video/1.mp4) with everyone in
   ../shared/faces enrolled through `examine_photo` (as `clockface enroll`
   does; all photos, nearest template): which people each rule would log;
2. visits made of photos: for each set, people with >= 3 photos are enrolled
   from their first photo, their other photos (up to n) are one genuine visit;
   the same visit against the gallery without that person, and every
   stranger's photos, are impostor visits (the eval protocol, per visit).

Not collected by pytest. Tables go to docs/results/track_rule.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from device.vision.matcher import Metric  # noqa: E402
from tests.benchmarks.results import default_results, provenance, write_results  # noqa: E402

SHARED = REPO.parent / "shared"
CLIP = SHARED / "faces" / "_video" / "1.mp4"


@dataclass(frozen=True)
class Visit:
    person: str | None  # who it really is (None: unknown people, e.g. clip tracks)
    embeddings: list[np.ndarray]
    exclude: str | None = None  # leave this person out of the gallery (impostor visit)


def decide_k_of_n(matcher, visit: Visit, k: int, n: int) -> str | None:
    from device.terminal.tracking import decide

    matches = []
    for e in visit.embeddings[:n]:
        matches.append(matcher.match(e, exclude=visit.exclude))
        decision = decide(matches, k, n, 0)
        if decision is not None:
            return decision.person
    return None  # the track ended before n embeddings and before k agreed


def decide_mean(matcher, visit: Visit, n: int) -> str | None:
    from device.vision.matcher import combine_templates

    (mean,) = combine_templates(visit.embeddings[:n], "mean")
    return matcher.match(mean, exclude=visit.exclude).person


def clip_visits(model, config) -> list[Visit]:
    """The first n embeddings of every track of the clip, as the loop would take them."""
    import cv2

    from device.terminal.tracking import Tracker, TrackerSettings
    from device.vision.detect import to_grey

    rec = config.recognition
    tracker = Tracker(
        TrackerSettings(rec.confirm_k, rec.confirm_n, rec.track_iou, rec.track_max_missing, rec.unknown_after)
    )
    embeddings: dict[int, list[np.ndarray]] = {}
    cap = cv2.VideoCapture(str(CLIP))
    index = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        grey = None
        for track, box in tracker.update(model.pipeline.detect(image, still=False), index):
            taken = embeddings.setdefault(track.id, [])
            if len(taken) >= rec.confirm_n or box.w < rec.min_face_px:
                continue
            grey = to_grey(image) if grey is None else grey
            chip, _ = model.pipeline.aligner.align(image, box, grey)
            taken.append(model.embedder.embed(chip))
        index += 1
    cap.release()
    return [Visit(None, e) for e in embeddings.values() if e]


def clip_table(model, config, thresholds: list[float]) -> str:
    from device.enrolment.photo_rules import examine_photo
    from device.evaluate import people_folders
    from device.vision.matcher import Matcher, combine_templates, one_row_per_person
    from gallery.layout import Photo, display_name

    names, rows = [], []
    for person, files in people_folders(SHARED / "faces").items():
        for path in files:
            result = examine_photo(Photo(display_name(person), path), model.pipeline, config.enrol)
            if result.ok:
                names.append(display_name(person))
                rows.append(result.vector)
    visits = clip_visits(model, config)
    rec = config.recognition
    names, gallery = one_row_per_person(names, np.stack(rows))  # as the terminal loads it
    lines = [
        f"Clip `_video/1.mp4`: {len(visits)} tracks with a face of >= {rec.min_face_px} px, first "
        f"{rec.confirm_n} embeddings each; gallery every photo of `../shared/faces` ({len(rows)} photos, "
        "one mean template per person, as the terminal loads it). Expected: Lin Manuel Miranda once, nobody else.",
        "",
    ]
    probe = Matcher(names, gallery, model.card.metric, 0.0)
    for i, v in enumerate(visits, 1):
        frames = [probe.match(e) for e in v.embeddings[: rec.confirm_n]]
        avg = probe.match(combine_templates(v.embeddings[: rec.confirm_n], "mean")[0])
        lines.append(
            f"- track {i}: nearest per frame "
            + ", ".join(f"{m.nearest} {m.distance:.3f}" for m in frames)
            + f"; mean {avg.nearest} {avg.distance:.3f}"
        )
    lines += ["", "| threshold | k-of-n logs | mean logs |", "|---|---|---|"]
    for t in thresholds:
        matcher = Matcher(names, gallery, model.card.metric, t)
        kn = sorted(p for v in visits if (p := decide_k_of_n(matcher, v, rec.confirm_k, rec.confirm_n)))
        mean = sorted(p for v in visits if (p := decide_mean(matcher, v, rec.confirm_n)))
        lines.append(f"| {t:.2f} | {', '.join(kn) or '-'} | {', '.join(mean) or '-'} |")
        print(lines[-1], file=sys.stderr)
    return "\n".join(lines)


def photo_visits(photos, root: Path, n: int) -> tuple[dict[str, np.ndarray], list[Visit]]:
    """Gallery (first photo) and visits (the rest) for one set, from cached largest-face embeddings."""
    by_person: dict[str, list] = {}
    for p in photos:
        if p.person.startswith(f"{root.name}/"):
            by_person.setdefault(p.person, []).append(p)
    gallery, visits = {}, []
    for person, items in sorted(by_person.items()):
        items = sorted(items, key=lambda p: p.path.name)
        if len(items) >= 3:
            if items[0].embedding is not None:
                gallery[person] = items[0].embedding
            frames = [p.embedding for p in items[1 : 1 + n] if p.embedding is not None]
            if frames:
                visits += [Visit(person, frames), Visit(None, frames, exclude=person)]
        else:
            frames = [p.embedding for p in items[:n] if p.embedding is not None]
            if frames:
                visits.append(Visit(None, frames))
    return gallery, visits


def rates(visits: list[Visit], decided: list[str | None]) -> tuple[str, str]:
    """(TAR of genuine visits, false accepts of impostor visits) as table cells (pure)."""
    pairs = list(zip(visits, decided, strict=True))
    genuine = [(v, d) for v, d in pairs if v.person is not None]
    impostor = [d for v, d in pairs if v.person is None]
    tar = sum(d == v.person for v, d in genuine) / max(len(genuine), 1)
    return f"{tar:.3f}", f"{sum(d is not None for d in impostor)} of {len(impostor)}"


def photo_table(photos, sets: list[Path], metric: Metric, thresholds: list[float], k: int, n: int) -> str:
    from device.vision.matcher import Matcher

    lines = [
        f"Visits made of photos (enrolled from the first photo; a visit is a person's other photos, up to {n}; "
        "impostor visits: each visit without its own person, and each stranger's photos). "
        "TAR = visits decided as the right person; FA = impostor visits decided as anyone.",
        "",
        "| set | threshold | visits | k-of-n TAR | k-of-n FA | mean TAR | mean FA |",
        "|---|---|---|---|---|---|---|",
    ]
    for root in sets:
        gallery, visits = photo_visits(photos, root, n)
        names = sorted(gallery)
        genuine = [v for v in visits if v.person is not None]
        for t in thresholds:
            m = Matcher(names, np.stack([gallery[x] for x in names]), metric, t)
            kn = [decide_k_of_n(m, v, k, n) for v in visits]
            mean = [decide_mean(m, v, n) for v in visits]
            cells = (*rates(visits, kn), *rates(visits, mean))
            lines.append(f"| {root.name} | {t:.2f} | {len(genuine)} | {' | '.join(cells)} |")
            print(lines[-1], file=sys.stderr)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from tests.benchmarks.derive_threshold import DEFAULT_SETS, load_or_embed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--threshold", type=float, nargs="+", help="default: the model's, and +-0.03")
    parser.add_argument("--embeddings", type=Path, help="photo embedding cache shared with derive_threshold.py")
    parser.add_argument("--output", type=Path, default=default_results(__file__))
    args = parser.parse_args(argv)

    from device.config import load_config
    from device.terminal.assembly import load_model

    config = load_config(args.config)
    model = load_model(config, args.model)
    thresholds = args.threshold or [round(model.threshold + d, 2) for d in (-0.03, 0.0, 0.03)]
    rec = config.recognition
    photos = load_or_embed(list(DEFAULT_SETS), model, args.embeddings, config.detection)
    markdown = "\n\n".join(
        [
            f"k-of-n: k={rec.confirm_k}, n={rec.confirm_n}; mean: the first n embeddings' normalised mean.",
            photo_table(photos, list(DEFAULT_SETS), model.card.metric, thresholds, rec.confirm_k, rec.confirm_n),
            clip_table(model, config, thresholds),
        ]
    )
    print(markdown)
    write_results(args.output, markdown, provenance(__file__))


if __name__ == "__main__":
    main()
