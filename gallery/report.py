"""The enrolment report: what happened to each photo and who is in the gallery now.

One plain value (`EnrolmentReport`) rendered three ways: human text (printed,
and written onto the stick as clockface-report.txt), CSV (clockface-report.csv,
for a spreadsheet) and JSON (`--json`). No biometric data is in any of them.
It is also what device/enrolment/folder.py `enrol_folder` returns: the one
model of an enrolment, built as the enrolment goes (it lives here because
gallery must not import device), so nothing is converted on the way out.
Writing onto the stick never fails the enrolment: a read-only stick gets a
line in the printed report instead.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from logs import csv_export

REPORT_TXT = "clockface-report.txt"
REPORT_CSV = "clockface-report.csv"


@dataclass(frozen=True)
class PhotoLine:
    file: str  # relative to the photo folder
    person: str
    outcome: str
    detail: str = ""
    warnings: tuple[str, ...] = ()
    enrolled: bool = False
    face_px: float | None = None
    sharpness: float | None = None
    brightness: float | None = None


class Status(StrEnum):
    """What an enrolment did to one person; a str, so the text, CSV and JSON show the value."""

    ENROLLED = "enrolled"  # new person
    UPDATED = "updated"  # was in the gallery, now enrolled from these photos
    KEPT = "kept"  # in the gallery and stays as it was
    REMOVED = "removed"  # replace mode: not in the folder
    NOT_ENROLLED = "not enrolled"  # in the folder, but no usable photo and no previous enrolment


@dataclass(frozen=True)
class PersonLine:
    name: str
    status: Status
    photos: int  # templates in the new gallery
    employee_id: str | None = None
    note: str = ""


@dataclass
class EnrolmentReport:
    when: datetime
    source: str  # the photo folder
    gallery: str
    mode: str  # replace / add
    model: str
    metric: str
    threshold: float | None
    written: bool
    error: str | None = None  # why the gallery was NOT changed
    photos: list[PhotoLine] = field(default_factory=list)
    roster: list[PersonLine] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # things someone should fix
    notes: list[str] = field(default_factory=list)  # things to know, not problems
    advice: str | None = None  # threshold advice (closest pair of different people)
    closest: dict | None = None
    report_files: list[str] = field(default_factory=list)
    report_error: str | None = None  # the stick could not take the report

    @property
    def enrolled_photos(self) -> int:
        return sum(p.enrolled for p in self.photos)

    @property
    def people(self) -> int:
        return sum(1 for p in self.roster if p.status is not Status.REMOVED and p.photos > 0)

    def headline(self) -> str:
        used = self.enrolled_photos
        not_used = len(self.photos) - used
        if not self.written:
            return f"GALLERY NOT CHANGED: {self.error or 'check only'}"
        removed = sum(p.status is Status.REMOVED for p in self.roster)
        tail = f", {removed} removed" if removed else ""
        return f"gallery updated: {self.people} people ({used} photos enrolled, {not_used} not used{tail})"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["when"] = self.when.isoformat(timespec="seconds")
        out["headline"] = self.headline()
        out["enrolled_photos"] = self.enrolled_photos
        out["people"] = self.people
        return out


def render_text(report: EnrolmentReport) -> str:
    lines = [
        f"clockface enrolment report, {report.when.strftime('%Y-%m-%d %H:%M:%S %z')}",
        f"photos:  {report.source}",
        f"mode:    {report.mode}"
        + (
            " (people not in the folder are removed)"
            if report.mode == "replace"
            else " (people are added or updated, no one is removed)"
        ),
    ]
    if report.metric:
        lines.append(f"model:   {report.model} ({report.metric} distance, threshold {report.threshold:g})")
    elif report.model:
        lines.append(f"model:   {report.model}")
    lines.append(f"result:  {report.headline()}")
    for note in report.notes:
        lines.append(f"note:    {note}")
    if report.report_error:
        lines.append(f"report:  {report.report_error}")
    if report.problems:
        lines += ["", "TO CHECK"] + [f"  - {p}" for p in report.problems]
    if report.photos:
        width = min(max(len(p.file) for p in report.photos), 48)
        lines += ["", "PHOTOS"]
        for p in report.photos:
            # Which way the eyes were found is for the CSV/JSON; people reading this need the rest.
            detail = "; ".join(d for d in p.detail.split("; ") if d and not d.startswith("eyes from"))
            extra = detail  # the measures (face px, sharpness, brightness) are in the CSV
            lines.append(f"  {p.outcome:<20} {p.file:<{width}}  {p.person}" + (f"  ({extra})" if extra else ""))
            for w in p.warnings:
                lines.append(f"  {'':<20} {'':<{width}}  ! {w}")
    if report.roster:
        width = min(max(len(r.name) for r in report.roster), 40)
        lines += ["", "PEOPLE" + (" (the gallery now)" if report.written else " (what the gallery would have been)")]
        for r in report.roster:
            ident = f"ID {r.employee_id}" if r.employee_id else ""
            lines.append(
                f"  {r.name:<{width}}  {r.status:<12} {r.photos:>2} photo{'s' if r.photos != 1 else ' '}  {ident:<12} {r.note}".rstrip()
            )
    if report.advice:
        lines += ["", "THRESHOLD", f"  {report.advice}"]
    return "\n".join(lines) + "\n"


CSV_FIELDS = [
    "kind",
    "name",
    "file",
    "outcome",
    "detail",
    "warnings",
    "photos",
    "employee_id",
    "face_px",
    "sharpness",
    "brightness",
]


def render_csv(report: EnrolmentReport) -> str:
    """One table: a row per photo (kind=photo), then a row per person (kind=person).

    File names and employee ids come off the stick, so cells go through the
    shared writer that keeps formula-looking text from running in a spreadsheet.
    """
    rows: list[dict[str, object]] = []
    if report.error and not report.photos:
        rows.append({"kind": "error", "detail": report.error})
    for p in report.photos:
        rows.append(
            {
                "kind": "photo",
                "name": p.person,
                "file": p.file,
                "outcome": p.outcome,
                "detail": p.detail,
                "warnings": " | ".join(p.warnings),
                "face_px": "" if p.face_px is None else f"{p.face_px:.0f}",
                "sharpness": "" if p.sharpness is None else f"{p.sharpness:.1f}",
                "brightness": "" if p.brightness is None else f"{p.brightness:.1f}",
            }
        )
    for r in report.roster:
        rows.append(
            {
                "kind": "person",
                "name": r.name,
                "outcome": r.status,
                "detail": r.note,
                "photos": r.photos,
                "employee_id": r.employee_id or "",
            }
        )
    return csv_export.render_csv(CSV_FIELDS, rows, lineterminator="\r\n")


def write_report(folder: Path, report: EnrolmentReport) -> tuple[list[Path], str | None]:
    """Write clockface-report.txt and .csv into `folder` (beside the photos on the
    stick). Returns the files written and, when the stick refused, why (one line)."""
    folder = Path(folder)
    written: list[Path] = []
    # A spreadsheet opens a UTF-8 CSV with a BOM correctly (names as written).
    for name, text, encoding in (
        (REPORT_TXT, render_text(report), "utf-8"),
        (REPORT_CSV, render_csv(report), "utf-8-sig"),
    ):
        target = folder / name
        tmp = folder / f".{name}.tmp"
        try:
            with open(tmp, "w", encoding=encoding, newline="") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            written.append(target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            reason = exc.strerror or str(exc)
            return (
                written,
                f"could not write the report onto the stick ({reason}); the enrolment itself is not affected",
            )
    return written, None
