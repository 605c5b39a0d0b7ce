"""How a folder of photos names people: the rules a USB stick must follow.

`anna_smith.jpg`, `anna_smith_2.jpg` and `anna_smith/<any>.jpg` are all photos
of Anna Smith. An optional `people.csv` (columns `name,employee_id`) beside or
inside the photo folder adds a payroll ID. Pure path and text logic, no image
reading, so the rules are easy to test and to document.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Phone photos. Read only by enrolment, and only when the optional pillow-heif
# package is installed (device/enrolment/photo_rules.py says so per photo when it is not).
HEIC_SUFFIXES = frozenset({".heic", ".heif"})
PHOTO_SUFFIXES = IMAGE_SUFFIXES | HEIC_SUFFIXES
PEOPLE_CSV = "people.csv"
# Files clockface itself writes onto a stick, never reported as "not an image".
REPORT_NAMES = frozenset({"clockface-report.txt", "clockface-report.csv"})
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
    return path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith(".")


def _is_ours(path: Path) -> bool:
    """people.csv and our own reports: part of the layout, not stray files."""
    return path.name.lower() in REPORT_NAMES or path.name.lower() == PEOPLE_CSV


def collect_photos(folder: Path) -> tuple[list[Photo], list[Skipped]]:
    """Every photo under `folder` with the person it shows, plus what was skipped and why.

    Top-level files name the person by file name (a trailing `_2` is a further
    photo); sub-folders name the person by folder name. Folders starting with
    `_` or `.` are ignored (not people). Sorted (ignoring case), so results are
    reproducible and a report reads alphabetically.
    """
    photos: list[Photo] = []
    skipped: list[Skipped] = []
    for entry in sorted(Path(folder).iterdir(), key=lambda p: (p.name.casefold(), p.name)):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            name = display_name(entry.name)
            for inner in sorted(entry.rglob("*"), key=lambda p: (str(p).casefold(), str(p))):
                if inner.is_file():
                    if _is_image(inner):
                        photos.append(Photo(name, inner))
                    elif not inner.name.startswith(".") and not _is_ours(inner):
                        skipped.append(Skipped(inner, "not an image file"))
        elif entry.is_file():
            if not _is_image(entry):
                if not _is_ours(entry):
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


@dataclass(frozen=True)
class PeopleList:
    """The optional people.csv: person key -> employee ID, plus what could not be used."""

    path: Path | None = None
    employee_ids: dict[str, str] = field(default_factory=dict)  # person_key(name) -> employee_id
    names: dict[str, str] = field(default_factory=dict)  # person_key(name) -> name as written
    problems: list[str] = field(default_factory=list)

    def employee_id(self, name: str) -> str | None:
        return self.employee_ids.get(person_key(name)) or None


def find_people_csv(images_dir: Path) -> Path | None:
    """people.csv inside the photo folder, else beside it (case-insensitive, as FAT sticks are)."""
    for folder in (Path(images_dir), Path(images_dir).parent):
        try:
            for entry in folder.iterdir():
                if entry.name.lower() == PEOPLE_CSV and entry.is_file():
                    return entry
        except OSError:
            continue
    return None


def read_people_csv(path: Path | None) -> PeopleList:
    """Parse `name,employee_id` (header required; `,` `;` or tab; a UTF-8 BOM from
    spreadsheet programs is fine). Names are matched like file names: `anna_smith`
    and `Anna Smith` are the same person. Problems are reported, never fatal."""
    if path is None:
        return PeopleList()
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return PeopleList(
            path, problems=[f"{path.name}: cannot read ({exc.strerror or exc}); employee IDs not updated"]
        )
    except UnicodeDecodeError:
        return PeopleList(
            path, problems=[f"{path.name}: not UTF-8 text (save it as 'CSV UTF-8'); employee IDs not updated"]
        )
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        return PeopleList(path, problems=[f"{path.name}: empty"])
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    header = [h.strip().lower().replace(" ", "_") for h in rows[0][1]]
    if "name" not in header or "employee_id" not in header:
        return PeopleList(
            path,
            problems=[f"{path.name}: needs a header line `name,employee_id` (found {','.join(rows[0][1])}); ignored"],
        )
    i_name, i_id = header.index("name"), header.index("employee_id")
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    problems: list[str] = []
    for n, row in rows[1:]:
        if len(row) <= max(i_name, i_id):
            problems.append(f"{path.name} line {n}: needs a name and an employee_id")
            continue
        name = display_name(row[i_name].strip())
        if not name:
            problems.append(f"{path.name} line {n}: no name")
            continue
        key = person_key(name)
        if key in ids and ids[key] != row[i_id].strip():
            problems.append(f"{path.name} line {n}: {name} is listed twice with different IDs; the first is used")
            continue
        ids.setdefault(key, row[i_id].strip())
        names.setdefault(key, name)
    return PeopleList(path, ids, names, problems)
