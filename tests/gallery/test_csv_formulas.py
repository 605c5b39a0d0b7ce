"""Names and ids from a stick never reach a spreadsheet as live formulas (stick report, `gallery export`)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import numpy as np
from click.testing import CliRunner

from device.cli.gallery import gallery
from device.config import parse_config
from gallery.report import REPORT_CSV, EnrolmentReport, PersonLine, PhotoLine, Status, write_report
from gallery.store import ModelBinding, PersonRecord, Template, write_gallery

FILE = '=HYPERLINK("http:__x")_cmd.jpg'
EMPLOYEE_ID = "=cmd|'/c calc'!A1"
NAME = "@SUM(A1)"


def test_stick_report_csv_quotes_formula_file_names_and_ids(tmp_path):
    report = EnrolmentReport(
        when=datetime(2026, 3, 30, 9, tzinfo=UTC),
        source=str(tmp_path),
        gallery="gallery.db",
        mode="replace",
        model="m",
        metric="cosine",
        threshold=0.4,
        written=True,
        photos=[PhotoLine(FILE, NAME, "enrolled", "-1 face", enrolled=True, face_px=180.0, brightness=120.0)],
        roster=[PersonLine(NAME, Status.ENROLLED, 1, EMPLOYEE_ID)],
    )
    _files, error = write_report(tmp_path, report)
    assert error is None
    rows = list(csv.DictReader(io.StringIO((tmp_path / REPORT_CSV).read_text(encoding="utf-8-sig"))))
    photo, person = rows
    assert (photo["file"], photo["name"], photo["detail"]) == ("'" + FILE, "'" + NAME, "'-1 face")
    assert (photo["face_px"], photo["brightness"]) == ("180", "120.0")  # measures stay numbers
    assert (person["employee_id"], person["photos"]) == ("'" + EMPLOYEE_ID, "1")


def test_gallery_export_quotes_formula_names_and_ids(tmp_path):
    (tmp_path / "data").mkdir()
    config = parse_config(
        {"paths": {"data_dir": str(tmp_path / "data"), "model": str(tmp_path / "none.tflite")}}, env={}
    )
    rng = np.random.default_rng(3)
    write_gallery(
        config.paths.gallery,
        ModelBinding("test-model", "d" * 64, 8),
        [Template(NAME, FILE, rng.standard_normal(8).astype(np.float32))],
        people={NAME: PersonRecord("2025-01-02T08:00:00+00:00", EMPLOYEE_ID)},
    )
    out = tmp_path / "roster.csv"
    for args in (["export"], ["export", "--output", str(out)]):
        result = CliRunner().invoke(gallery, args, obj=config)
        assert result.exit_code == 0, result.output
        text = result.stdout if len(args) == 1 else out.read_text(encoding="utf-8-sig")
        [row] = list(csv.DictReader(io.StringIO(text)))
        assert (row["name"], row["employee_id"], row["photos"]) == ("'" + NAME, "'" + EMPLOYEE_ID, "1")
