"""Enrolment: which photos are good enough to make someone recognisable.

The same rules serve `clockface enroll`, the USB stick and `clockface eval`,
so the accuracy we report is the accuracy a user gets from the same photos.

Three layers, each testable alone, each in its own module:
- here, `examine_photo`: one photo -> one outcome (unreadable, no face, several
  faces, too blurry, or enrolled with an embedding, perhaps with a warning: small
  or dark face),
  through the one detect/align/embed path in device/vision/faces.py.
- device/enrolment/review.py, `review_photos`: rules that need all photos at once,
  in the model's own metric and threshold: duplicates, one person's photos
  that do not look alike, two names that look like the same person.
- device/enrolment/folder.py, `enrol_folder`: a folder (or stick) -> a new
  gallery, in replace or add mode, built completely and swapped in atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from msgspec import Meta

from device.camera.images import ImageReadError, read_image, read_regular_file
from device.vision.detect import FaceBox
from device.vision.faces import FacePipeline
from gallery.layout import Photo, Skipped


class Outcome(StrEnum):
    ENROLLED = "enrolled"
    NO_FACE = "no face"
    SEVERAL_FACES = "several faces"
    TOO_BLURRY = "too blurry"
    DUPLICATE = "duplicate photo"
    NOT_ALIKE = "not like the others"
    UNREADABLE = "unreadable file"
    NOT_IMAGE = "not an image"


@dataclass(frozen=True)
class EnrolRules:
    """The limits. A refusal must refuse only photos the terminal would not have
    recognised anyway: tests/benchmarks/quality_rules.py checks every limit on the
    labelled photos of ../shared/faces and ../shared/faces-extra plus blurred,
    darkened and shrunk copies (docs/results/quality_rules.md). A rule that could
    not show that (size, brightness) warns instead of refusing."""

    # WARNING, not a refusal: faces narrower than this are enrolled with a warning.
    # Fitted on ../shared (quality_rules.py): faces shrunk to 35-45 px are still
    # recognised 56-74 % of the time, so no size limit the detector lets through
    # refuses only unrecognisable photos; 60 px is where recognition was still whole.
    min_face_px: Annotated[int, Meta(ge=1, le=4096)] = 60
    # The largest face is used when the next one is clearly smaller than it
    # (a passer-by in the background); comparable faces make the photo ambiguous.
    dominance: Annotated[float, Meta(gt=0, le=1)] = 0.7
    # REFUSAL: sharpness (face_quality: 1000 x var(Laplacian) / var(grey) of the face
    # region at most FOCUS_PX wide) below this is "too blurry". Fitted on ../shared
    # (quality_rules.py): the highest limit tried at which no refused photo (originals,
    # and copies blurred by sigma 2-6 % of the face width) would have been recognised
    # is 15 (30 refused, 0 recognised; at 20, 1 of 55 refused was recognised). The
    # softest original photo of both sets scores 56.
    min_sharpness: Annotated[float, Meta(ge=0, le=1000)] = 15.0
    # WARNING, not a refusal: a face darker than this mean grey level (0-255, the face
    # region at its own resolution) is enrolled with a warning. Fitted on ../shared
    # (quality_rules.py): copies darkened to 7 % of their exposure (brightness 6-10)
    # are still recognised 60 of 84 times, so no darkness limit refuses only
    # unrecognisable photos. The darkest original scores 71; the same photos at
    # 20 % exposure median 29.
    min_brightness: Annotated[float, Meta(ge=0, le=255)] = 35.0
    # REFUSAL: two photos of one person closer than this fraction of the model's
    # threshold are the same picture. Fitted on ../shared (quality_rules.py): different
    # photos of one person are at least 0.20 apart (0 refused at 0.2 x 0.51), re-saved
    # half-size copies from 0.0 up (a refused copy loses nothing: its twin is enrolled).
    duplicate_fraction: Annotated[float, Meta(ge=0, le=1)] = 0.2


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

    @property
    def vector(self) -> np.ndarray:
        """The embedding of a photo that was embedded (enrolled, or later judged a
        duplicate or not alike); asking a rejected photo for one is a caller bug."""
        if self.embedding is None:
            raise ValueError(f"{self.path.name}: {self.outcome.value}, not embedded")
        return self.embedding


# --- one photo ---------------------------------------------------------------
# The face region the quality measures look at, as fractions of the detector's
# square face box: eyes to mouth, little hair or background. Taken from the
# original image and the box, never from the aligned chip, so the measures do not
# change when the alignment does (and a small face is not first upsampled to the
# chip's size, which made every sharp small face look blurred).
FACE_REGION = (0.2, 0.8, 0.2, 0.85)  # x0, x1, y0, y1
# Sharpness is measured with the face region at most this many pixels wide: a
# larger face is resized down to it (area averaging), a smaller one is measured as
# it is. Blur that harms recognition is blur relative to the face (the embedder
# sees every face at one chip size), so measuring every face at one scale makes
# the number independent of how big the face is; a face smaller than this cannot
# hold finer detail than its own pixels, so it is judged at its own resolution
# instead of being upsampled (which would blur it).
FOCUS_PX = 40


@dataclass(frozen=True)
class FaceQuality:
    """What the quality rules measure on one face."""

    sharpness: float  # 1000 x var(Laplacian) / var(grey) at FOCUS_PX scale: contrast-free
    brightness: float  # mean grey level 0-255 of the face region, at its own resolution


def face_region(image_bgr: np.ndarray, box: FaceBox) -> np.ndarray:
    """The grey face region (FACE_REGION of the box) at the image's own pixel size."""
    grey = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[:2]
    x0, x1, y0, y1 = FACE_REGION
    left, right = round(box.x + x0 * box.w), round(box.x + x1 * box.w)
    top, bottom = round(box.y + y0 * box.h), round(box.y + y1 * box.h)
    left, top = min(max(left, 0), w), min(max(top, 0), h)
    right, bottom = max(min(right, w), left), max(min(bottom, h), top)  # never a negative index
    return grey[top:bottom, left:right]


def face_quality(image_bgr: np.ndarray, box: FaceBox) -> FaceQuality:
    """Sharpness and brightness of one detected face, from the original image."""
    region = face_region(image_bgr, box)
    if region.size == 0:
        return FaceQuality(0.0, 0.0)
    brightness = float(region.mean())
    rh, rw = region.shape[:2]
    if rw > FOCUS_PX:
        region = cv2.resize(region, (FOCUS_PX, max(1, round(rh * FOCUS_PX / rw))), interpolation=cv2.INTER_AREA)
    return FaceQuality(contrast_free_sharpness(region.astype(np.float64)), brightness)


def contrast_free_sharpness(grey: np.ndarray) -> float:
    """1000 x var(Laplacian) / var(grey): edges relative to the face's own contrast,
    so a dark or flat-lit photo is not also called blurry."""
    spread = float(grey.var())
    if spread <= 1e-6 or min(grey.shape[:2]) < 3:
        return 0.0
    return 1000.0 * float(cv2.Laplacian(grey, cv2.CV_64F).var()) / spread


def examine_photo(photo: Photo, pipeline: FacePipeline, rules: EnrolRules) -> PhotoResult:
    """Decide whether one photo enrols its person, and embed it if so."""
    try:
        image = read_image(photo.path)  # every format, size-checked (device/camera/images.py)
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
    quality = face_quality(image, largest)
    sharpness, brightness = quality.sharpness, quality.brightness
    if sharpness < rules.min_sharpness:
        return PhotoResult(
            photo.path,
            photo.person,
            Outcome.TOO_BLURRY,
            f"sharpness {sharpness:.0f}, needs {rules.min_sharpness:g}",
            face_px=largest.w,
            sharpness=sharpness,
            brightness=brightness,
        )
    warnings = quality_warnings(largest.w, quality, rules)
    finding = pipeline.finding(image, largest)
    return PhotoResult(
        photo.path,
        photo.person,
        Outcome.ENROLLED,
        detail,
        finding.embedding,
        warnings=warnings,
        face_px=largest.w,
        sharpness=sharpness,
        brightness=brightness,
    )


def quality_warnings(face_px: float, quality: FaceQuality, rules: EnrolRules) -> tuple[str, ...]:
    """What enrols but deserves a better photo: a small or dark face is still
    recognised more often than not (docs/results/quality_rules.md), so refusing it
    would refuse someone the terminal can recognise."""
    out = []
    if face_px < rules.min_face_px:
        out.append(
            f"small face ({face_px:.0f} px, {rules.min_face_px} or more recognises better): a larger photo would help"
        )
    if quality.brightness < rules.min_brightness:
        out.append(
            f"dark photo (face brightness {quality.brightness:.0f}, {rules.min_brightness:g} or more recognises better): "
            "a brighter photo would help"
        )
    return tuple(out)


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
            result = PhotoResult(
                photo.path, photo.person, Outcome.DUPLICATE, f"same file as {first.name}", sha256=digest
            )
        else:
            result = dataclasses.replace(examine_photo(photo, pipeline, rules), sha256=digest)
            if digest:
                seen[(photo.key, digest)] = photo.path
        results.append(result)
        if progress is not None:
            progress(photo)
    return results


def file_sha256(path: Path) -> str:
    """Digest of a regular file; "" for anything else (a FIFO must not block us here:
    examine_photo then reports the file)."""
    try:
        return hashlib.sha256(read_regular_file(path)).hexdigest()
    except ImageReadError:
        return ""


def skipped_results(skipped: Iterable[Skipped]) -> list[PhotoResult]:
    return [PhotoResult(s.path, "", Outcome.NOT_IMAGE, s.reason) for s in skipped]
