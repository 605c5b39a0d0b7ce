"""How a folder of photos names people: the rules a USB stick must follow.

`anna_smith.jpg`, `anna_smith_2.jpg` and `anna_smith/<any>.jpg` are all photos
of Anna Smith. Pure path logic, no image reading, so the rules are easy to test
and to document.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_NUMBERED = re.compile(r"^(?P<base>.+?)[_\- ](?P<n>\d+)$")


@dataclass(frozen=True)
class Photo:
    person: str  # display name, e.g. "Anna Smith"
    path: Path

    @property
    def key(self) -> str:
        return person_key(self.person)


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


def display_name(stem: str) -> str:
    """`anna_smith` -> `Anna Smith`; a name already written with capitals (or in a
    script without case) is kept as written, only underscores become spaces."""
    words = [w for w in re.split(r"[_\s]+", unicodedata.normalize("NFC", stem).strip()) if w]
    if not words:
        return ""
    name = " ".join(words)
    return name.title() if name == name.lower() and name != name.upper() else name


def person_key(name: str) -> str:
    """Case- and spacing-insensitive identity of a display name."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def collect_photos(folder: Path) -> tuple[list[Photo], list[Skipped]]:
    """Every photo under `folder` with the person it shows, plus what was skipped and why.

    Top-level files name the person by file name (a trailing `_2` is a further
    photo); sub-folders name the person by folder name. Folders starting with
    `_` or `.` are ignored (not people). Sorted, so results are reproducible.
    """
    photos: list[Photo] = []
    skipped: list[Skipped] = []
    for entry in sorted(Path(folder).iterdir(), key=lambda p: p.name):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            name = display_name(entry.name)
            for inner in sorted(entry.rglob("*"), key=lambda p: str(p)):
                if inner.is_file():
                    if _is_image(inner):
                        photos.append(Photo(name, inner))
                    elif not inner.name.startswith("."):
                        skipped.append(Skipped(inner, "not an image file"))
        elif entry.is_file():
            if not _is_image(entry):
                skipped.append(Skipped(entry, "not an image file"))
                continue
            stem = entry.stem
            numbered = _NUMBERED.match(stem)
            name = display_name(numbered.group("base") if numbered else stem)
            if not name:
                skipped.append(Skipped(entry, "file name gives no person name"))
                continue
            photos.append(Photo(name, entry))
    return photos, skipped
