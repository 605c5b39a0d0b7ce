"""Enrolment: which photos are good enough to make someone recognisable.

The same rules serve `clockface enroll`, the USB stick and `clockface eval`,
so the accuracy we report is the accuracy a user gets from the same photos.

Three layers, each testable alone:
- `examine_photo`: one photo -> one outcome (unreadable, no face, several
  faces, face too small, too dark, too blurry, or enrolled with an embedding),
  through the one detect/align/embed path in device/faces.py.
- `review_photos`: rules that need all photos at once, in the model's own
  metric and threshold: duplicates (same bytes or a near-identical embedding),
  one person's photos that do not look alike, two names that look like the
  same person.
- `enrol_folder`: a folder (or stick) -> a new gallery, in replace or add
  mode, built completely and swapped in atomically; anything that goes wrong
  leaves the old gallery in force and is reported, not half-done.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import cv2
import numpy as np

from device.faces import FacePipeline
from device.images import ImageReadError, read_image
from gallery.layout import HEIC_SUFFIXES, PeopleList, Photo, Skipped, collect_photos, find_people_csv, person_key, read_people_csv
from gallery.store import GalleryError, GalleryStore, ModelBinding, PersonRecord, Template, check_folder, write_gallery

if TYPE_CHECKING:  # device.terminal imports device.config, which imports this module
    from datetime import datetime

    from device.terminal import LoadedModel
    from gallery.report import EnrolmentReport


class Outcome(str, Enum):
    ENROLLED = "enrolled"
    NO_FACE = "no face"
    SEVERAL_FACES = "several faces"
    TOO_SMALL = "face too small"
    TOO_DARK = "too dark"
    TOO_BLURRY = "too blurry"
    DUPLICATE = "duplicate photo"
    NOT_ALIKE = "not like the others"
    UNREADABLE = "unreadable file"
    NOT_IMAGE = "not an image"


@dataclass(frozen=True)
class EnrolRules:
    min_face_px: int = 60  # smaller faces are upscaled more than 2.5x into a 150-px chip
    # The largest face is used when the next one is clearly smaller than it
    # (a passer-by in the background); comparable faces make the photo ambiguous.
    dominance: float = 0.7
    # Sharpness = 1000 x var(Laplacian) / var(grey) over the centre of the aligned
    # chip (contrast-free, so a dark photo is not also "blurry"). The softest good
    # photo in ../shared/faces scores 45.7; blurring photos there by sigma = 2 chip
    # pixels gives a median of 14 (and moves the embedding ~0.3, half dlib's threshold).
    min_sharpness: float = 20.0
    # Mean grey level (0-255) of the chip's centre, i.e. of the face. The darkest
    # good photo in ../shared/faces is 87.6; the same photos at 25 % exposure 20-45.
    min_brightness: float = 35.0
    # Two photos of one person closer than this fraction of the model's threshold
    # are the same picture (resized or re-saved copies measure 0.03-0.21 with dlib,
    # different photos of one person at least 0.29; threshold 0.55).
    duplicate_fraction: float = 0.2


@dataclass(frozen=True)
class PhotoResult:
    path: Path
    person: str
    outcome: Outcome
    detail: str = ""
    embedding: np.ndarray | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()  # enrolled, but someone should look at it
    face_px: float | None = None
    sharpness: float | None = None
    brightness: float | None = None
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ENROLLED


# --- one photo ---------------------------------------------------------------
def read_photo(path: Path) -> np.ndarray:
    """8-bit BGR pixels of a photo, EXIF orientation applied. JPEG/PNG/... via
    OpenCV (device/images.py); HEIC/HEIF via the optional pillow-heif package."""
    path = Path(path)
    if path.suffix.lower() not in HEIC_SUFFIXES:
        return read_image(path)
    try:
        import pillow_heif
        from PIL import ImageOps
    except ImportError:
        raise ImageReadError(
            f"{path.name}: HEIC photos need the optional pillow-heif package (pip install pillow-heif), or save it as JPEG"
        ) from None
    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        image = ImageOps.exif_transpose(heif.to_pillow()).convert("RGB")
    except Exception as exc:  # noqa: BLE001 - libheif raises many types; each is "unreadable"
        raise ImageReadError(f"{path.name}: not a readable HEIC image ({exc})") from None
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def chip_quality(chip_bgr: np.ndarray) -> tuple[float, float]:
    """(sharpness, brightness) of the face in an aligned chip, measured on its
    centre (eyes to mouth, little background), so every model's chip is judged alike."""
    h, w = chip_bgr.shape[:2]
    grey = cv2.cvtColor(chip_bgr, cv2.COLOR_BGR2GRAY)[int(0.2 * h) : int(0.87 * h), int(0.17 * w) : int(0.83 * w)].astype(np.float64)
    brightness = float(grey.mean())
    spread = float(grey.var())
    sharpness = 1000.0 * float(cv2.Laplacian(grey, cv2.CV_64F).var()) / spread if spread > 1e-6 else 0.0
    return sharpness, brightness


def examine_photo(photo: Photo, pipeline: FacePipeline, rules: EnrolRules) -> PhotoResult:
    """Decide whether one photo enrols its person, and embed it if so."""
    try:
        image = read_photo(photo.path)
    except ImageReadError as exc:
        return PhotoResult(photo.path, photo.person, Outcome.UNREADABLE, str(exc))
    boxes = pipeline.detect(image, still=True)
    if not boxes:
        return PhotoResult(photo.path, photo.person, Outcome.NO_FACE, "no face found")
    largest = boxes[0]
    detail = ""
    if len(boxes) > 1:
        if boxes[1].w >= rules.dominance * largest.w:
            return PhotoResult(photo.path, photo.person, Outcome.SEVERAL_FACES, f"{len(boxes)} faces of similar size")
        detail = f"largest of {len(boxes)} faces used"
    if largest.w < rules.min_face_px:
        return PhotoResult(
            photo.path, photo.person, Outcome.TOO_SMALL, f"face is {largest.w:.0f} px wide, needs {rules.min_face_px}", face_px=largest.w
        )
    finding = pipeline.finding(image, largest)
    sharpness, brightness = chip_quality(finding.chip)
    measured = dict(face_px=largest.w, sharpness=sharpness, brightness=brightness)
    if brightness < rules.min_brightness:
        return PhotoResult(
            photo.path, photo.person, Outcome.TOO_DARK, f"face brightness {brightness:.0f}, needs {rules.min_brightness:g}", **measured
        )
    if sharpness < rules.min_sharpness:
        return PhotoResult(
            photo.path, photo.person, Outcome.TOO_BLURRY, f"sharpness {sharpness:.0f}, needs {rules.min_sharpness:g}", **measured
        )
    detail = "; ".join(d for d in (detail, f"eyes from {finding.eyes.source}") if d)
    return PhotoResult(photo.path, photo.person, Outcome.ENROLLED, detail, finding.embedding, **measured)


def examine_photos(
    photos: Iterable[Photo], pipeline: FacePipeline, rules: EnrolRules, progress: Callable[[Photo], None] | None = None
) -> list[PhotoResult]:
    """Examine each photo; a byte-identical second copy of one person's photo is
    reported as a duplicate without being examined again."""
    results = []
    seen: dict[tuple[str, str], Path] = {}
    for photo in photos:
        digest = file_sha256(photo.path)
        first = seen.get((photo.key, digest)) if digest else None
        if first is not None:
            result = PhotoResult(photo.path, photo.person, Outcome.DUPLICATE, f"same file as {first.name}", sha256=digest)
        else:
            result = dataclasses.replace(examine_photo(photo, pipeline, rules), sha256=digest)
            if digest:
                seen[(photo.key, digest)] = photo.path
        results.append(result)
        if progress is not None:
            progress(photo)
    return results


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""  # examine_photo reports the unreadable file


def skipped_results(skipped: Iterable[Skipped]) -> list[PhotoResult]:
    return [PhotoResult(s.path, "", Outcome.NOT_IMAGE, s.reason) for s in skipped]


# --- all photos together -------------------------------------------------------
def pairwise_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """(len(a), len(b)) distances in the matcher's metric (device/matcher.py)."""
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
        return _relative(path, root)

    by_person: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(out):
        if r.ok:
            by_person[r.person].append(i)
    warn: dict[int, list[str]] = defaultdict(list)

    for person, idx in by_person.items():
        vecs = np.stack([out[i].embedding for i in idx])
        d = pairwise_distances(vecs, vecs, metric)
        # Near-identical copies: keep the first, drop the rest.
        kept: list[int] = []
        for k, i in enumerate(idx):
            twins = [j for j in kept if d[k, idx.index(j)] < rules.duplicate_fraction * threshold]
            if twins:
                j = twins[0]
                out[i] = dataclasses.replace(
                    out[i], outcome=Outcome.DUPLICATE, detail=f"nearly identical to {label(out[j].path)} (distance {d[k, idx.index(j)]:.2f})"
                )
            else:
                kept.append(i)
        by_person[person] = kept
        if len(kept) < 2:
            continue
        pos = [idx.index(i) for i in kept]
        dk = d[np.ix_(pos, pos)]
        np.fill_diagonal(dk, np.inf)
        matches = (dk <= threshold).sum(axis=1)
        if len(kept) >= 3 and matches.max() > 0:
            for k, i in enumerate(kept):
                if matches[k] == 0:
                    out[i] = dataclasses.replace(
                        out[i],
                        outcome=Outcome.NOT_ALIKE,
                        detail=f"does not look like {person}'s other photos (nearest {dk[k].min():.2f}, threshold {threshold:g}): someone else?",
                    )
            by_person[person] = [i for k, i in enumerate(kept) if matches[k] > 0]
        else:
            for k, i in enumerate(kept):
                if matches[k] == 0:
                    warn[i].append(
                        f"does not look like {person}'s other photo{'s' if len(kept) > 2 else ''} "
                        f"(nearest {dk[k].min():.2f}, threshold {threshold:g}): is one of them someone else?"
                    )

    # Different names, same face? Compare each enrolled photo with every other person.
    entries = [(out[i].person, label(out[i].path), out[i].embedding, i) for idx in by_person.values() for i in idx]
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
                key = tuple(sorted((names[a], names[b])))
                if key not in pairs or d[a, b] < pairs[key].distance:
                    first, second = (a, b) if names[a] == key[0] else (b, a)
                    pairs[key] = LookAlike(key[0], key[1], float(d[a, b]), entries[first][1], entries[second][1])
                for me, other in ((a, b), (b, a)):
                    i = entries[me][3]
                    if i is not None and d[a, b] < nearest.get((i, names[other]), (np.inf, -1))[0]:
                        nearest[(i, names[other])] = (float(d[a, b]), other)
        # One line per photo and look-alike person: the closest of their photos.
        for (i, name), (dist, other) in sorted(nearest.items(), key=lambda kv: kv[1][0]):
            j = entries[other][3]
            same = " - the very same file" if out[i].sha256 and j is not None and out[j].sha256 == out[i].sha256 else ""
            warn[i].append(f"looks like {name} ({entries[other][1]}, distance {dist:.2f}){same}: the same person under two names?")
    # A photo dropped as "not like the others": say whose photo it seems to be.
    for i, r in enumerate(out):
        if r.outcome is Outcome.NOT_ALIKE and entries:
            d = pairwise_distances(r.embedding[None, :], np.stack([e[2] for e in entries]), metric)[0]
            d[[e[0] == r.person for e in entries]] = np.inf
            k = int(np.argmin(d))
            if d[k] <= threshold:
                out[i] = dataclasses.replace(r, detail=f"{r.detail} It looks like {entries[k][0]} ({entries[k][1]}, distance {d[k]:.2f}).")
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
    ta, tb = sorted((templates[a], templates[b]), key=lambda t: t.person)
    return ClosestPair(ta.person, tb.person, float(d[a, b]), float(threshold), ta.photo, tb.photo)


# --- a folder -> a new gallery -------------------------------------------------------
class Status(str, Enum):
    ENROLLED = "enrolled"  # new person
    UPDATED = "updated"  # was in the gallery, now enrolled from these photos
    KEPT = "kept"  # in the gallery and stays as it was
    REMOVED = "removed"  # replace mode: not in the folder
    NOT_ENROLLED = "not enrolled"  # in the folder, but no usable photo and no previous enrolment


@dataclass(frozen=True)
class RosterEntry:
    name: str
    status: Status
    photos: int  # templates in the new gallery
    employee_id: str | None = None
    note: str = ""


@dataclass
class EnrolmentResult:
    images_dir: Path
    gallery: Path
    mode: str  # "replace" | "add"
    model: str
    metric: str
    threshold: float
    results: list[PhotoResult] = field(default_factory=list)
    roster: list[RosterEntry] = field(default_factory=list)
    look_alikes: list[LookAlike] = field(default_factory=list)
    closest: ClosestPair | None = None
    notes: list[str] = field(default_factory=list)  # things to know, not problems
    problems: list[str] = field(default_factory=list)  # things someone should fix
    written: bool = False
    error: str | None = None  # why the gallery was NOT changed

    @property
    def enrolled_photos(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def people_in_gallery(self) -> int:
        return sum(e.status is not Status.REMOVED and e.photos > 0 for e in self.roster)


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).name


def enrol_folder(
    images_dir: Path,
    model: "LoadedModel",
    rules: EnrolRules,
    gallery_path: Path,
    add: bool = False,
    write: bool = True,
    progress: Callable[[Photo], None] | None = None,
    on_photos: Callable[[int], None] | None = None,
) -> EnrolmentResult:
    """Enrol every photo in `images_dir` (the gallery/layout.py rules) into a new gallery.

    Replace mode (default): the folder is the staff list, people not in it are
    removed. Add mode: people in the folder are added or updated, others kept.
    A person in the folder with no usable photo keeps their previous enrolment.
    The gallery is written only at the end, in one atomic swap; when that is
    impossible `error` says why and the old gallery is untouched.
    """
    images_dir = Path(images_dir)
    binding: ModelBinding = model.binding
    metric, threshold = model.card.metric, float(model.threshold)
    result = EnrolmentResult(images_dir, Path(gallery_path), "add" if add else "replace", model.card.name, metric, threshold)

    if write:  # fail before spending minutes on photos
        try:
            check_folder(Path(gallery_path))
        except GalleryError as exc:
            result.error = f"{exc}; the gallery was not changed"
            return result

    # The previous gallery: what we may keep from it.
    store = GalleryStore(gallery_path)
    old_templates: list[Template] = []
    old_records: dict[str, PersonRecord] = {}
    if store.exists():
        try:
            bound = store.binding()
            old_records = store.records()
            if bound.sha256 == binding.sha256:
                old_templates = store.templates(binding)
            elif add:
                result.error = (
                    f"the gallery was enrolled with another model ({bound.name}, sha256 {bound.sha256[:12]}; now {binding.name}, "
                    f"sha256 {binding.sha256[:12]}), so --add cannot keep its people: re-enrol everyone with `clockface enroll DIR` "
                    "(without --add) from a folder of all staff photos"
                )
                return result
            else:
                result.notes.append(f"the previous gallery was made by another model ({bound.name}); everyone is re-enrolled from these photos")
                old_records = {}
        except (GalleryError, KeyError) as exc:
            if add:
                result.error = f"the existing gallery cannot be read ({exc}); re-enrol everyone with `clockface enroll DIR` (without --add)"
                return result
            result.notes.append(f"the previous gallery could not be read ({exc}); it is replaced")
            old_records = {}

    try:
        photos, skipped = collect_photos(images_dir)
    except OSError as exc:
        result.error = f"cannot list {images_dir}: {exc.strerror or exc}"
        return result
    people_list: PeopleList = read_people_csv(find_people_csv(images_dir))
    result.problems.extend(people_list.problems)

    # One spelling per person (the first file's), so anna_smith.jpg and Anna_Smith_2.jpg are one person.
    spelling: dict[str, str] = {}
    for p in photos:
        spelling.setdefault(p.key, p.person)
    photos = [Photo(spelling[p.key], p.path) for p in photos]
    if on_photos is not None:
        on_photos(len(photos))

    examined = examine_photos(photos, model.pipeline, rules, progress)
    old_by_key: dict[str, list[Template]] = defaultdict(list)
    for t in old_templates:
        old_by_key[person_key(t.person)].append(t)
    staying = [t for t in old_templates if add and person_key(t.person) not in spelling]
    reviewed, look_alikes = review_photos(examined, metric, threshold, rules, others=staying, root=images_dir)
    result.results = reviewed + skipped_results(skipped)
    result.look_alikes = look_alikes

    # The new gallery.
    new_templates: list[Template] = []
    kept_templates: list[Template] = []
    records: dict[str, PersonRecord] = {}
    roster: list[RosterEntry] = []
    old_names = {person_key(name): name for name in old_records}
    for key, name in spelling.items():
        mine = [Template(name, _relative(r.path, images_dir), r.embedding) for r in reviewed if r.ok and person_key(r.person) == key]
        old_name = old_names.get(key)
        old_record = old_records.get(old_name) if old_name else None
        employee_id = people_list.employee_id(name) if person_key(name) in people_list.employee_ids else (old_record.employee_id if old_record else None)
        if mine:
            new_templates.extend(mine)
            records[name] = PersonRecord(None, employee_id)
            roster.append(RosterEntry(name, Status.UPDATED if old_name else Status.ENROLLED, len(mine), employee_id))
        elif old_by_key.get(key):
            kept = [dataclasses.replace(t, person=name) for t in old_by_key[key]]
            kept_templates.extend(kept)
            records[name] = PersonRecord(old_record.enrolled_at if old_record else None, employee_id)
            roster.append(RosterEntry(name, Status.KEPT, len(kept), employee_id, "no usable photo in this folder: previous enrolment kept"))
            why = "; ".join(f"{_relative(r.path, images_dir)}: {r.outcome.value}" for r in reviewed if person_key(r.person) == key)
            result.problems.append(f"{name}: no usable photo ({why}), the previous enrolment is kept")
        else:
            roster.append(RosterEntry(name, Status.NOT_ENROLLED, 0, employee_id, "no usable photo"))
            why = "; ".join(f"{_relative(r.path, images_dir)}: {r.outcome.value}" for r in reviewed if person_key(r.person) == key)
            result.problems.append(f"{name}: NOT ENROLLED, no usable photo ({why})")
    for key, templates in old_by_key.items():
        if key in spelling:
            continue
        name = templates[0].person
        old_record = old_records.get(name, PersonRecord())
        employee_id = people_list.employee_id(name) if key in people_list.employee_ids else old_record.employee_id
        if add:
            kept_templates.extend(templates)
            records[name] = PersonRecord(old_record.enrolled_at, employee_id)
            roster.append(RosterEntry(name, Status.KEPT, len(templates), employee_id))
        else:
            roster.append(RosterEntry(name, Status.REMOVED, 0, old_record.employee_id, "not in this folder"))
    for key, name in people_list.names.items():
        if key not in spelling and key not in old_by_key:
            result.problems.append(f"people.csv lists {name}, but there is no photo of them")
    result.roster = sorted(roster, key=lambda e: (e.status is Status.REMOVED, person_key(e.name)))

    for r in result.results:
        if r.ok and r.warnings:
            result.problems.extend(f"{_relative(r.path, images_dir)}: {w}" for w in r.warnings if "looks like" not in w)
    for pair in look_alikes:
        result.problems.append(
            f"{pair.a} and {pair.b} look like the same person ({pair.photo_a} / {pair.photo_b}, distance {pair.distance:.2f}, "
            f"threshold {threshold:g}): check the photos are named right"
        )

    final = kept_templates + new_templates
    result.closest = closest_pair(final, metric, threshold)
    if not new_templates:
        result.error = "no usable photo in this folder, so the gallery was left unchanged" if photos else f"no photos found in {images_dir}, so the gallery was left unchanged"
        return result
    if not write:
        result.notes.append("check only: the gallery was not changed")
        return result
    try:
        write_gallery(gallery_path, binding, new_templates, keep=kept_templates, people=records)
    except (GalleryError, OSError) as exc:
        result.error = f"the gallery could not be written, the previous one stays in force: {exc}"
        return result
    result.written = True
    return result


def _advice_is_news(result: EnrolmentResult) -> bool:
    """A confusable closest pair belongs under "to check", unless it is already there as a look-alike pair."""
    c = result.closest
    return c is not None and c.confused and not any({p.a, p.b} == {c.a, c.b} for p in result.look_alikes)


def to_report(result: EnrolmentResult, when: "datetime | None" = None) -> "EnrolmentReport":
    """The plain report (gallery/report.py) of an enrolment: no embeddings in it."""
    from datetime import datetime

    from gallery.report import EnrolmentReport, PersonLine, PhotoLine

    photos = [
        PhotoLine(
            file=_relative(r.path, result.images_dir),
            person=r.person,
            outcome=r.outcome.value,
            detail=r.detail,
            warnings=r.warnings,
            enrolled=r.ok,
            face_px=None if r.face_px is None else round(float(r.face_px), 1),
            sharpness=None if r.sharpness is None else round(r.sharpness, 1),
            brightness=None if r.brightness is None else round(r.brightness, 1),
        )
        for r in result.results
    ]
    roster = [PersonLine(e.name, e.status.value, e.photos, e.employee_id, e.note) for e in result.roster]
    closest = dataclasses.asdict(result.closest) | {"confused": result.closest.confused} if result.closest else None
    return EnrolmentReport(
        when=when or datetime.now().astimezone(),
        source=str(result.images_dir),
        gallery=str(result.gallery),
        mode=result.mode,
        model=result.model,
        metric=result.metric,
        threshold=result.threshold,
        written=result.written,
        error=result.error,
        photos=photos,
        roster=roster,
        problems=list(result.problems) + ([result.closest.advice()] if _advice_is_news(result) else []),
        notes=list(result.notes),
        advice=result.closest.advice() if result.closest else None,
        closest=closest,
    )
