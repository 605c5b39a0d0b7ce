"""Stick layout rules (people.csv, HEIC, our own files) and the report renderings."""

from __future__ import annotations

import csv
import errno
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device.camera.images import IMAGE_SUFFIXES
from gallery.layout import collect_photos, find_people_csv, read_people_csv
from gallery.report import (
    REPORT_CSV,
    REPORT_TXT,
    EnrolmentReport,
    PersonLine,
    PhotoLine,
    Status,
    render_csv,
    render_text,
    write_report,
)


def test_layout_names_people_and_ignores_our_own_files(tmp_path):
    for name in [
        "anna_smith.jpg",
        "anna_smith_2.JPG",
        "bob_jones.heic",
        "people.csv",
        "clockface-report.txt",
        "notes.txt",
        "._anna_smith.jpg",
    ]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "José Núñez").mkdir()
    (tmp_path / "José Núñez" / "1.png").write_bytes(b"x")
    (tmp_path / "_unused").mkdir()
    (tmp_path / "_unused" / "x.jpg").write_bytes(b"x")
    photos, skipped = collect_photos(tmp_path, IMAGE_SUFFIXES)
    assert [(p.person, p.path.name) for p in photos] == [
        ("Anna Smith", "anna_smith.jpg"),
        ("Anna Smith", "anna_smith_2.JPG"),
        ("Bob Jones", "bob_jones.heic"),
        ("José Núñez", "1.png"),  # sorted by name, ignoring case
    ]
    assert [s.path.name for s in skipped] == ["notes.txt"]


def test_people_csv_from_a_spreadsheet(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (tmp_path / "People.CSV").write_bytes(
        "\ufeffName;Employee ID\nanna_smith;E-1\nJosé Núñez;E-2\n\nBob;\nAnna Smith;E-9\n".encode()
    )
    found = find_people_csv(images)
    assert found == tmp_path / "People.CSV"
    people = read_people_csv(found)
    assert people.employee_id("Anna Smith") == "E-1"
    assert people.employee_id("josé núñez") == "E-2"
    assert people.employee_id("Bob") is None
    assert people.problems == ["People.CSV line 6: Anna Smith is listed twice with different IDs; the first is used"]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"first,last\nAnna,Smith\n", "needs a header line `name,employee_id`"),
        (b"name,employee_id\n\xff\xfe\x00bad", "not UTF-8 text"),
        (b"", "empty"),
    ],
)
def test_people_csv_problems_are_reported_not_fatal(tmp_path, content, problem):
    path = tmp_path / "people.csv"
    path.write_bytes(content)
    people = read_people_csv(path)
    assert people.employee_ids == {} and problem in people.problems[0]


def _report(**kw) -> EnrolmentReport:
    base = dict(
        when=datetime(2025, 3, 4, 8, 30, tzinfo=UTC),
        source="/run/clockface-stick/sdb1/images",
        gallery="/var/lib/clockface/gallery.db",
        mode="replace",
        model="dlib-resnet-v1",
        metric="euclidean",
        threshold=0.6,
        written=True,
        photos=[
            PhotoLine(
                "anna_smith.jpg",
                "Anna Smith",
                "enrolled",
                "eyes from cascade",
                enrolled=True,
                face_px=300,
                sharpness=400,
                brightness=140,
            ),
            PhotoLine(
                "bob,jones.jpg",
                "Bob,Jones",
                "too blurry",
                "sharpness 12, needs 20",
                face_px=200,
                sharpness=12,
                brightness=130,
            ),
            PhotoLine(
                "zoë.jpg",
                "Zoë",
                "enrolled",
                "",
                ("looks like Anna Smith (anna_smith.jpg, distance 0.31): the same person under two names?",),
                True,
            ),
        ],
        roster=[
            PersonLine("Anna Smith", Status.UPDATED, 1, "E-1"),
            PersonLine("Zoë", Status.ENROLLED, 1),
            PersonLine("Bob,Jones", Status.NOT_ENROLLED, 0, None, "no usable photo"),
            PersonLine("Carl", Status.REMOVED, 0),
        ],
        problems=["Bob,Jones: NOT ENROLLED, no usable photo"],
        advice="closest pair of different people: Anna Smith and Zoë, distance 0.310",
    )
    base.update(kw)
    return EnrolmentReport(**base)


def test_text_report_reads_top_down():
    text = render_text(_report())
    assert "result:  gallery updated: 2 people (2 photos enrolled, 1 not used, 1 removed)" in text
    assert text.index("TO CHECK") < text.index("PHOTOS") < text.index("PEOPLE") < text.index("THRESHOLD")
    assert "! looks like Anna Smith" in text
    assert "too blurry           bob,jones.jpg   Bob,Jones  (sharpness 12, needs 20)\n" in text
    assert "eyes from cascade" not in text  # a detail for the CSV, not for the person at the stick
    failed = render_text(
        _report(written=False, error="no usable photo in this folder, so the gallery was left unchanged")
    )
    assert "result:  GALLERY NOT CHANGED: no usable photo" in failed
    assert "what the gallery would have been" in failed


def test_csv_report_has_a_row_per_photo_and_per_person():
    rows = list(csv.DictReader(io.StringIO(render_csv(_report()))))
    assert [r["kind"] for r in rows] == ["photo"] * 3 + ["person"] * 4
    assert rows[1]["name"] == "Bob,Jones" and rows[1]["outcome"] == "too blurry"
    assert rows[3] == {**rows[3], "name": "Anna Smith", "outcome": "updated", "photos": "1", "employee_id": "E-1"}
    assert "embedding" not in render_csv(_report())


def test_report_files_are_written_beside_the_photos(tmp_path):
    files, error = write_report(tmp_path, _report())
    assert error is None and [f.name for f in files] == [REPORT_TXT, REPORT_CSV]
    assert (tmp_path / REPORT_CSV).read_bytes().startswith(b"\xef\xbb\xbf")  # spreadsheets then read UTF-8 names right
    assert "Zoë" in (tmp_path / REPORT_TXT).read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == [REPORT_CSV, REPORT_TXT]


def test_a_stick_that_refuses_the_report_gives_one_line(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    def read_only(file, mode="r", *args, **kwargs):
        if "w" in mode and str(tmp_path) in str(file):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    files, error = write_report(tmp_path, _report())
    assert files == []
    assert (
        error
        == "could not write the report onto the stick (Read-only file system); the enrolment itself is not affected"
    )
    assert list(Path(tmp_path).iterdir()) == []
