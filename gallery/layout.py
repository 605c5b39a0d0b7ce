"""How a folder of photos names people: the rules a USB stick must follow.

`anna_smith.jpg`, `anna_smith_2.jpg` and `anna_smith/<any>.jpg` are all photos
of Anna Smith. An optional `people.csv` (columns `name,employee_id`) beside or
inside the photo folder adds a payroll ID. Path and text logic, no image
reading: which suffixes are photos is the caller's (device/camera/images.py
knows what the device can decode), so the rules are easy to test and to document.

A stick is untrusted: files are examined with lstat before anything opens
them, symbolic links are followed only while they stay on the folder's own
file system, and FIFOs, devices, broken links and link loops are reported,
never opened and never silently dropped.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import stat
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

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


def _is_image(path: Path, suffixes: Collection[str]) -> bool:
    return path.suffix.lower() in suffixes and not path.name.startswith(".")


def _is_ours(path: Path) -> bool:
    """people.csv and our own reports: part of the layout, not stray files."""
    return path.name.lower() in REPORT_NAMES or path.name.lower() == PEOPLE_CSV


@dataclass(frozen=True)
class Entry:
    """What a folder entry is, judged by lstat/stat alone (nothing is opened)."""

    path: Path
    kind: str  # "file", "dir", or "other" (then `reason` says why it is not used)
    reason: str = ""
    inode: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the target, for loop detection


_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def examine_entry(path: Path, file_system: int) -> Entry:
    """Classify `path` without opening it. A symbolic link is followed only when its
    target is on `file_system` (an st_dev): a stick's photos stay on the stick."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            try:
                info = os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return Entry(path, "other", "symbolic link loop, not followed")
                if exc.errno == errno.ENOENT:
                    return Entry(path, "other", f"broken symbolic link (to {os.readlink(path)})")
                raise
            if info.st_dev != file_system:
                return Entry(
                    path, "other", f"symbolic link leaves this file system (to {os.readlink(path)}), not followed"
                )
    except OSError as exc:
        return Entry(path, "other", f"cannot read ({exc.strerror or exc})")
    inode = (info.st_dev, info.st_ino)
    if stat.S_ISDIR(info.st_mode):
        return Entry(path, "dir", inode=inode)
    if stat.S_ISREG(info.st_mode):
        return Entry(path, "file", inode=inode)
    what = next((name for test, name in _NOT_REGULAR if test(info.st_mode)), "not a regular file")
    return Entry(path, "other", f"not a regular file ({what}), not opened")


def _listing(folder: Path) -> list[Path]:
    return sorted(Path(folder).iterdir(), key=lambda p: (p.name.casefold(), p.name))


def _walk(folder: Path, file_system: int, ancestors: frozenset[tuple[int, int]], skipped: list[Skipped]) -> list[Path]:
    """Regular files under `folder` (hidden names ignored); links out of the file
    system, link loops and non-regular files go to `skipped`."""
    files: list[Path] = []
    try:
        listing = _listing(folder)
    except OSError as exc:
        skipped.append(Skipped(folder, f"cannot list folder ({exc.strerror or exc})"))
        return files
    for path in listing:
        if path.name.startswith("."):
            continue
        entry = examine_entry(path, file_system)
        if entry.kind == "dir":
            if entry.inode in ancestors:
                skipped.append(Skipped(path, "symbolic link loop (a folder inside itself), not followed"))
            else:
                files.extend(_walk(path, file_system, ancestors | {entry.inode}, skipped))
        elif entry.kind == "file":
            files.append(path)
        else:
            skipped.append(Skipped(path, entry.reason))
    return files


def collect_photos(folder: Path, suffixes: Collection[str]) -> tuple[list[Photo], list[Skipped]]:
    """Every photo under `folder` with the person it shows, plus what was skipped and why.

    `suffixes` are the file endings that are photos (lower case, with the dot).
    Top-level files name the person by file name (a trailing `_2` is a further
    photo); sub-folders name the person by folder name. Folders starting with
    `_` or `.` are ignored (not people), as are hidden files. Sorted (ignoring
    case), so results are reproducible and a report reads alphabetically.
    """
    folder = Path(folder)
    root = os.stat(folder)
    file_system = root.st_dev
    photos: list[Photo] = []
    skipped: list[Skipped] = []
    for path in _listing(folder):
        if path.name.startswith((".", "_")):
            continue
        entry = examine_entry(path, file_system)
        if entry.kind == "dir":
            if entry.inode == (root.st_dev, root.st_ino):
                skipped.append(Skipped(path, "symbolic link loop (a folder inside itself), not followed"))
                continue
            name = display_name(path.name)
            inner_skipped: list[Skipped] = []
            inner = _walk(path, file_system, frozenset({(root.st_dev, root.st_ino), entry.inode}), inner_skipped)
            for file in sorted(inner, key=lambda p: (str(p).casefold(), str(p))):
                if _is_image(file, suffixes):
                    photos.append(Photo(name, file))
                elif not _is_ours(file):
                    skipped.append(Skipped(file, "not an image file"))
            skipped.extend(inner_skipped)
        elif entry.kind == "file":
            if not _is_image(path, suffixes):
                if not _is_ours(path):
                    skipped.append(Skipped(path, "not an image file"))
                continue
            stem = path.stem
            numbered = _NUMBERED.match(stem)
            name = display_name(numbered.group("base") if numbered else stem)
            if not name:
                skipped.append(Skipped(path, "file name gives no person name"))
                continue
            photos.append(Photo(name, path))
        else:
            skipped.append(Skipped(path, entry.reason))
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
            file_system = os.stat(folder).st_dev
            for entry in folder.iterdir():
                if entry.name.lower() == PEOPLE_CSV and examine_entry(entry, file_system).kind == "file":
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
