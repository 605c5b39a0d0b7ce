"""Enrolment: which photos are good enough to make someone recognisable.

The same rules serve `clockface enroll` and `clockface eval`, so the accuracy
we report is the accuracy a user gets from the same photos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from device.faces import FacePipeline
from device.images import ImageReadError, read_image
from gallery.layout import Photo, Skipped


class Outcome(str, Enum):
    ENROLLED = "enrolled"
    NO_FACE = "no face"
    SEVERAL_FACES = "several faces"
    TOO_SMALL = "face too small"
    UNREADABLE = "unreadable file"
    NOT_IMAGE = "not an image"


@dataclass(frozen=True)
class EnrolRules:
    min_face_px: int = 60  # smaller faces are upscaled more than 2.5x into a 150-px chip
    # The largest face is used when the next one is clearly smaller than it
    # (a passer-by in the background); comparable faces make the photo ambiguous.
    dominance: float = 0.7


@dataclass(frozen=True)
class PhotoResult:
    path: Path
    person: str
    outcome: Outcome
    detail: str = ""
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ENROLLED


def examine_photo(photo: Photo, pipeline: FacePipeline, rules: EnrolRules) -> PhotoResult:
    """Decide whether one photo enrols its person, and embed it if so."""
    try:
        image = read_image(photo.path)
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
            photo.path, photo.person, Outcome.TOO_SMALL, f"face is {largest.w:.0f} px wide, needs {rules.min_face_px}"
        )
    finding = pipeline.finding(image, largest)
    detail = "; ".join(d for d in (detail, f"eyes from {finding.eyes.source}") if d)
    return PhotoResult(photo.path, photo.person, Outcome.ENROLLED, detail, finding.embedding)


def examine_photos(
    photos: Iterable[Photo], pipeline: FacePipeline, rules: EnrolRules, progress: Callable[[Photo], None] | None = None
) -> list[PhotoResult]:
    results = []
    for photo in photos:
        results.append(examine_photo(photo, pipeline, rules))
        if progress is not None:
            progress(photo)
    return results


def skipped_results(skipped: Iterable[Skipped]) -> list[PhotoResult]:
    return [PhotoResult(s.path, "", Outcome.NOT_IMAGE, s.reason) for s in skipped]
