"""Derive the shipped recognition threshold from labelled photos, false accepts first.

    python tests/benchmarks/derive_threshold.py [--sets DIR ...] [--model FILE.tflite]
        [--probe-far 0.01] [--gallery-size 20] [--update-spec] [--no-eval]

Why this way: a few dozen leave-one-out trials of `clockface eval` cannot see
the rare close stranger, and a stranger at the door is compared with every one
of N enrolled staff, so a per-probe false accept rate of F needs a per-pair
false match rate of about F / N (../shared/notes/eval-protocol.md). So every
photo of every labelled set is embedded with the device's own pipeline
(`load_model(...).pipeline`, largest face, as `clockface eval` probes are), and
the threshold is read off the distribution of EVERY different-person pair of
photos across all sets; every same-person pair gives the TAR at that threshold.

- The per-pair target is `--probe-far / --gallery-size` (default 1% over 20
  staff = 1 in 2,000 pairs). 20 is the smallest site this terminal is for (a
  small office) and the size of the galleries its eval sets enrol (13 and 20
  people): a larger site should re-run this with its own size, a stricter
  threshold. At 10 staff (1 in 1,000) faces-extra's tail fit gave 0.528 and
  1 false accept in 88 eval trials (2026-12-01, MTCNN front end).
- A threshold at per-pair FMR f is the empirical quantile: the midpoint between
  the k-th and (k+1)-th nearest impostor pairs, k = floor(f x pairs), so
  exactly k pairs fall within. With fewer than MIN_TAIL_PAIRS pairs below it
  the quantile is a guess, so the table says so and extrapolates a tail fit
  instead: a normal fitted to the lower tail alone (probit of the empirical
  FMR linear in distance, from MIN_TAIL_PAIRS pairs up to FMR 1%). A normal
  fitted to all impostor distances was tried first and is optimistic (0.580 vs
  the empirical 0.541 at 1e-3 on the two sets, 2026-12-01): look-alikes make
  the tail heavier than the bulk says. The table shows the fit beside every
  row, so its error where the data can check it stays visible.
- The pooled pairs dilute a cluster of look-alikes (the false accepts crowd on
  East Asian faces, which dlib's network places closer together), and a
  terminal's staff may all come from such a cluster. So the target is also
  read off each set's own pairs, and the strictest of these thresholds ships.
- Pairs share photos, so they are not independent: the quantile's error is
  larger than the pair count suggests. That is one more reason the shipped
  value is rounded down (to 0.01), the strict side.

The shipped value goes into converter/models.py (the `DLIB_THRESHOLD` block;
`--update-spec` rewrites it with this run's provenance), the converter writes
it into the model's sidecar, and `device.terminal.assembly.load_model` uses it
unless the config sets `recognition.threshold`. Re-run after any front-end
change (detection, alignment), then `clockface convert dlib-resnet-v1`.

Unless `--no-eval`, it also runs `clockface eval`'s protocol on each set at the
derived threshold with 1 and 2 enrolment photos, for the docs.

Not collected by pytest (no test_ prefix). Tables go to docs/results/derive_threshold.md.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.results import default_results, provenance, write_results  # noqa: E402

DEFAULT_SETS = (REPO.parent / "shared" / "faces", REPO.parent / "shared" / "faces-extra")
TABLE_FMRS = (1e-2, 1e-3, 1e-4)
MIN_TAIL_PAIRS = 10  # fewer impostor pairs below a quantile than this: use the stated tail fit
SPEC_FILE = REPO / "converter" / "models.py"
SPEC_BEGIN, SPEC_END = "# [derive_threshold]", "# [/derive_threshold]"


@dataclass(frozen=True)
class Labelled:
    person: str  # "<set>/<person>": people of different sets are different people
    path: Path
    embedding: np.ndarray | None  # None: no face found


@dataclass(frozen=True)
class Pairs:
    genuine: np.ndarray  # distances of every same-person pair of photos
    impostor: np.ndarray  # distances of every different-person pair


@dataclass(frozen=True)
class FmrPoint:
    fmr: float
    threshold: float
    method: str  # "empirical" or "normal fit"
    impostor_within: int
    genuine_accept: float  # TAR of same-person pairs at the threshold
    fit_threshold: float  # the normal fit's threshold at this FMR, for comparison


def stack(photos: list[Labelled]) -> np.ndarray:
    """The embeddings of photos that have one, as rows."""
    return np.stack([p.embedding for p in photos if p.embedding is not None])


def pair_distances(people: list[str], embeddings: np.ndarray, metric: str) -> Pairs:
    """Every unordered pair of photos split into same- and different-person (pure)."""
    from device.vision.matcher import pairwise_distances

    d = pairwise_distances(embeddings, embeddings, metric)
    labels = np.array(people, dtype=object)
    i, j = np.triu_indices(len(people), k=1)
    same = labels[i] == labels[j]
    return Pairs(genuine=np.sort(d[i[same], j[same]]), impostor=np.sort(d[i[~same], j[~same]]))


def tail_fit(impostor: np.ndarray, min_tail: int = MIN_TAIL_PAIRS, upper: float = 0.01) -> tuple[float, float]:
    """(a, b) of z(FMR) ~ a + b x distance, fitted on the checkable lower tail (pure).

    A normal fit of ALL impostor distances is ruled by the bulk and is optimistic
    in the tail (look-alikes make it heavier), so the fit uses only the tail
    points: the k-th nearest pair at FMR k/n for k from min_tail to upper x n.
    A straight line in probit space is a normal fitted to the tail alone.
    """
    n = len(impostor)
    ks = np.arange(min_tail, max(int(upper * n), min_tail + 2) + 1)
    ks = ks[ks <= n]
    z = np.array([NormalDist().inv_cdf(k / n) for k in ks])
    b, a = np.polyfit(impostor[ks - 1], z, 1)
    return float(a), float(b)


def tail_fit_threshold(impostor: np.ndarray, fmr: float, min_tail: int = MIN_TAIL_PAIRS) -> float:
    """The distance at which the tail fit reaches a per-pair FMR (pure)."""
    a, b = tail_fit(impostor, min_tail)
    return (NormalDist().inv_cdf(fmr) - a) / b


def threshold_at_fmr(pairs: Pairs, fmr: float, min_tail: int = MIN_TAIL_PAIRS) -> FmrPoint:
    """Threshold at a per-pair false match rate, empirical where the data can say (pure)."""
    imp = pairs.impostor
    k = math.floor(fmr * len(imp))
    fit = tail_fit_threshold(imp, fmr, min_tail)
    if k >= min_tail:
        threshold, method = float((imp[k - 1] + imp[k]) / 2), "empirical"
    else:
        threshold, method = fit, "tail fit"
    return FmrPoint(
        fmr=fmr,
        threshold=threshold,
        method=method,
        impostor_within=int(np.count_nonzero(imp <= threshold)),
        genuine_accept=float(np.mean(pairs.genuine <= threshold)) if len(pairs.genuine) else 0.0,
        fit_threshold=fit,
    )


def shipped_threshold(point: FmrPoint) -> float:
    """Rounded down to 0.01: the strict side, and a value a reader can remember (pure)."""
    return math.floor(point.threshold * 100 + 1e-9) / 100


def embed_sets(sets: list[Path], pipeline) -> list[Labelled]:
    from device.evaluate import largest_face_embedding, people_folders

    photos = []
    for root in sets:
        for person, files in people_folders(root).items():
            for path in files:
                photos.append(Labelled(f"{root.name}/{person}", path, largest_face_embedding(path, pipeline)))
                print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    return photos


def front_end_key(model, detection: object) -> str:
    """What the embeddings depend on: the model file, the detection settings and the
    source of device/vision and device/camera (a front-end change invalidates the cache)."""
    digest = hashlib.sha256(model.card.model_sha256.encode())
    digest.update(repr(detection).encode())
    for source in sorted([*(REPO / "device" / "vision").glob("*.py"), *(REPO / "device" / "camera").glob("*.py")]):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def load_or_embed(sets: list[Path], model, cache: Path | None, detection: object = None) -> list[Labelled]:
    """Embed every photo, or reuse a cache an earlier run wrote with the same front end and sets."""
    key = front_end_key(model, detection) + "|" + "|".join(str(s) for s in sets)
    if cache and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        if str(data["model"]) == key:
            found = data["found"]
            return [
                Labelled(str(person), Path(path), vec if ok else None)
                for person, path, vec, ok in zip(data["person"], data["path"], data["embedding"], found, strict=True)
            ]
    photos = embed_sets(sets, model.pipeline)
    if cache:
        size = model.card.embedding_size
        np.savez(
            cache,
            model=key,
            person=np.array([p.person for p in photos]),
            path=np.array([str(p.path) for p in photos]),
            embedding=np.stack([p.embedding if p.embedding is not None else np.zeros(size) for p in photos]),
            found=np.array([p.embedding is not None for p in photos]),
        )
    return photos


def fmr_table(points: list[FmrPoint], pairs: Pairs) -> str:
    lines = [
        f"Every pair of photos across the sets: {len(pairs.impostor):,} different-person pairs, "
        f"{len(pairs.genuine):,} same-person pairs. Empirical quantiles need at least {MIN_TAIL_PAIRS} "
        "impostor pairs below them; rarer targets extrapolate a normal fitted to the lower tail "
        "(probit of the empirical FMR linear in distance, from the 10th pair to FMR 1%), shown beside every row "
        "so its error at the checkable rows is visible.",
        "",
        "| per-pair FMR | threshold | how | impostor pairs within | same-person pairs accepted (TAR) | tail fit |",
        "|---|---|---|---|---|---|",
    ]
    for p in points:
        how = p.method if p.method == "empirical" else f"tail fit (too few pairs: {p.fmr * len(pairs.impostor):.1f})"
        lines.append(
            f"| {p.fmr:g} | {p.threshold:.3f} | {how} | {p.impostor_within} | {p.genuine_accept:.3f} "
            f"| {p.fit_threshold:.3f} |"
        )
    return "\n".join(lines)


def margin_lines(threshold: float, pairs: Pairs, photos: list[Labelled], metric: str) -> list[str]:
    imp = pairs.impostor
    within = int(np.count_nonzero(imp <= threshold))
    near = int(np.count_nonzero(imp <= threshold + 0.05))
    summary = (
        f"Margin at the shipped {threshold:.2f}: the nearest different-person pair is at {imp[0]:.3f} "
        f"({threshold - imp[0]:+.3f} inside the threshold if positive); {within} of {len(imp):,} impostor pairs "
        f"fall within it ({within / len(imp):.2e} per pair) and {near} within {threshold + 0.05:.2f}. "
        f"Same-person pairs accepted: {np.mean(pairs.genuine <= threshold):.3f} "
        f"(largest same-person distance {pairs.genuine[-1]:.3f})."
    )
    return [summary, *closest_impostors(photos, metric, threshold)]


def closest_impostors(photos: list[Labelled], metric: str, threshold: float, show: int = 5) -> list[str]:
    from device.vision.matcher import pairwise_distances

    found = [p for p in photos if p.embedding is not None]
    d = pairwise_distances(stack(found), stack(found), metric)
    i, j = np.triu_indices(len(found), k=1)
    diff = np.array([found[a].person != found[b].person for a, b in zip(i, j, strict=True)])
    order = np.argsort(d[i[diff], j[diff]])[:show]
    rows = ["", "Closest different-person pairs:", ""]
    for o in order:
        a, b = found[i[diff][o]], found[j[diff][o]]
        mark = " (within)" if d[i[diff][o], j[diff][o]] <= threshold else ""
        rows.append(f"- {d[i[diff][o], j[diff][o]]:.3f}{mark}: {a.person}/{a.path.name} vs {b.person}/{b.path.name}")
    return rows


def eval_table(sets: list[Path], model, threshold: float, rules) -> str:
    from device.evaluate import evaluate
    from device.vision.matcher import TemplateRule

    protocols: list[tuple[int, TemplateRule]] = [(1, "nearest"), (2, "nearest"), (2, "mean")]

    lines = [
        f"`clockface eval` protocol at the shipped threshold {threshold:.2f} (per-photo TAR; K enrolment photos):",
        "",
        "| set | K | templates | enrolled | genuine probes | TAR | false accepts | FAR | "
        "TAR at FAR 0 / 1% / 2% / 5% | enrolment refusals |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for root in sets:
        for k, rule in protocols:
            r = evaluate(root, model.pipeline, model.card.metric, threshold, rules, enrol_photos=k, templates=rule)
            curve = " / ".join(f"{p.true_accept_rate:.2f}" for p in r.curve)
            lines.append(
                f"| {root.name} | {k} | {rule} | {r.people_enrolled} | {r.genuine_probes} | {r.true_accept_rate:.3f} "
                f"| {r.false_accepts} of {r.impostor_trials} | {r.false_accept_rate:.3f} | {curve} "
                f"| {len(r.enrolment_failures)} |"
            )
            print(lines[-1], file=sys.stderr)
    return "\n".join(lines)


def spec_block(threshold: float, target: float, how: str, args: argparse.Namespace, when: str) -> str:
    names = " + ".join(f"../shared/{s.name}" for s in args.sets)
    return (
        f"{SPEC_BEGIN} written by tests/benchmarks/derive_threshold.py --update-spec; re-run it, never edit by hand.\n"
        f"# Fitted {when} on every photo pair of {names} (device pipeline, largest face):\n"
        f"# per-pair false match rate {target:g} (per-probe FAR {args.probe_far:g} over a {args.gallery_size}-person "
        "gallery),\n"
        f"# {how},\n"
        "# rounded down to 0.01. Table and margin: docs/results/derive_threshold.md.\n"
        f"DLIB_THRESHOLD = {threshold:.2f}\n"
        f"{SPEC_END}"
    )


def update_spec(block: str, path: Path = SPEC_FILE) -> None:
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(SPEC_BEGIN) + r".*?" + re.escape(SPEC_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no {SPEC_BEGIN} ... {SPEC_END} block to update")
    path.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", type=Path, default=list(DEFAULT_SETS))
    parser.add_argument("--model", type=Path, help="the .tflite (default: the configured model)")
    parser.add_argument("--config", type=Path, help="clockface.toml (default: the usual search)")
    parser.add_argument("--probe-far", type=float, default=0.01, help="per-probe false accept target")
    parser.add_argument("--gallery-size", type=int, default=20, help="enrolled people a stranger is compared with")
    parser.add_argument("--update-spec", action="store_true", help="write the threshold into converter/models.py")
    parser.add_argument("--no-eval", action="store_true", help="skip the per-set eval table")
    parser.add_argument("--output", type=Path, default=default_results(__file__))
    parser.add_argument("--embeddings", type=Path, help="cache of the photo embeddings (.npz), keyed by the front end")
    args = parser.parse_args(argv)

    from device.config import load_config
    from device.terminal.assembly import load_model

    config = load_config(args.config)
    model = load_model(config, args.model)
    photos = load_or_embed(args.sets, model, args.embeddings, config.detection)
    found = [p for p in photos if p.embedding is not None]
    pairs = pair_distances([p.person for p in found], stack(found), model.card.metric)
    target = args.probe_far / args.gallery_size
    points = [threshold_at_fmr(pairs, f) for f in sorted({*TABLE_FMRS, target}, reverse=True)]
    per_set = {"all sets": threshold_at_fmr(pairs, target)}
    for root in args.sets:
        mine = [p for p in found if p.person.startswith(f"{root.name}/")]
        set_pairs = pair_distances([p.person for p in mine], stack(mine), model.card.metric)
        per_set[root.name] = threshold_at_fmr(set_pairs, target)
    source, chosen = min(per_set.items(), key=lambda item: item[1].threshold)
    shipped = shipped_threshold(chosen)
    when = f"{datetime.now(UTC):%Y-%m-%d}"
    sets_text = ", ".join(f"`../shared/{s.name}`" for s in args.sets)
    parts = [
        f"Photos: {len(photos)} in {sets_text} ({len(photos) - len(found)} with no face found), "
        f"{len({p.person for p in photos})} people; model {model.card.name} ({model.card.metric}).",
        "",
        fmr_table(points, pairs),
        "",
        f"At the target per-pair FMR {target:g} (per-probe FAR {args.probe_far:g} for a stranger meeting "
        f"{args.gallery_size} staff), pooled and per set (the strictest ships):",
        "",
        "| pairs of | threshold | how | impostor pairs within | same-person pairs accepted |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {p.threshold:.3f} | {p.method} | {p.impostor_within} | {p.genuine_accept:.3f} |"
            for name, p in per_set.items()
        ),
        "",
        f"Shipped threshold: **{shipped:.2f}**, the {chosen.method} threshold {chosen.threshold:.3f} of {source} "
        "rounded down to 0.01.",
        "",
        *margin_lines(shipped, pairs, photos, model.card.metric),
    ]
    if not args.no_eval:
        parts += ["", eval_table(args.sets, model, shipped, config.enrol)]
    markdown = "\n".join(parts)
    print(markdown)
    write_results(args.output, markdown, provenance(__file__))
    print(f"\nwrote {args.output}", file=sys.stderr)
    if args.update_spec:
        how = f"the strictest of pooled and per-set thresholds: {chosen.method} {chosen.threshold:.3f} of {source}"
        update_spec(spec_block(shipped, target, how, args, when))
        print(f"updated {SPEC_FILE}: DLIB_THRESHOLD = {shipped:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
