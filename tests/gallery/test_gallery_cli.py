"""`clockface gallery list/remove/export` on small synthetic galleries (no model needed),
and what a stick gets told when the terminal itself cannot enrol."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from click.testing import CliRunner

from device.cli.gallery import enroll, enroll_stick, gallery
from device.config import parse_config
from gallery.store import GalleryStore, ModelBinding, PersonRecord, Template, write_gallery

MODEL = ModelBinding("test-model", "d" * 64, 8)


@pytest.fixture
def config(tmp_path):
    (tmp_path / "data").mkdir()
    return parse_config(
        {"paths": {"data_dir": str(tmp_path / "data"), "model": str(tmp_path / "models" / "none.tflite")}}, env={}
    )


@pytest.fixture
def enrolled(config):
    rng = np.random.default_rng(7)
    templates = [
        Template(n, f"{n}.jpg", rng.standard_normal(8).astype(np.float32))
        for n in ("Anna Smith", "Anna Smith", "Bob Jones")
    ]
    write_gallery(
        config.paths.gallery, MODEL, templates, people={"Anna Smith": PersonRecord("2025-01-02T08:00:00+00:00", "E-1")}
    )
    return templates


def run(command, args, config, **kw):
    return CliRunner().invoke(command, args, obj=config, **kw)


def test_list_without_a_gallery(config):
    assert run(gallery, ["list", "--json"], config).stdout == "[]\n"
    assert "no gallery yet" in run(gallery, ["list"], config).stdout


def test_list_shows_name_photos_when_and_model(config, enrolled):
    rows = json.loads(run(gallery, ["list", "--json"], config).stdout)
    assert rows[0] == {
        "name": "Anna Smith",
        "photos": 2,
        "enrolled_at": "2025-01-02T08:00:00+00:00",
        "employee_id": "E-1",
        "model": "test-model",
        "model_sha256": "d" * 64,
    }
    text = run(gallery, ["list"], config).stdout
    assert text.splitlines()[0].split() == ["NAME", "PHOTOS", "ENROLLED", "EMPLOYEE", "ID"]
    assert (
        text.splitlines()[-1] == f"2 people, model test-model (sha256 {'d' * 12})"
    )  # configured model absent: no verdict


def test_export_is_a_roster_without_biometric_data(config, enrolled, tmp_path):
    out = tmp_path / "roster.csv"
    result = run(gallery, ["export", "--output", str(out)], config)
    assert result.exit_code == 0
    text = out.read_text(encoding="utf-8-sig")
    assert text.splitlines() == [
        "name,employee_id,photos,enrolled_at,model",
        "Anna Smith,E-1,2,2025-01-02T08:00:00+00:00,test-model",
        f"Bob Jones,,1,{GalleryStore(config.paths.gallery).people()[1].enrolled_at},test-model",
    ]
    raw = out.read_bytes()
    assert not any(t.embedding.astype("<f4").tobytes()[:8] in raw for t in enrolled)


def test_remove_asks_first(config, enrolled):
    result = run(gallery, ["remove", "Bob Jones"], config, input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert [p.name for p in GalleryStore(config.paths.gallery).people()] == ["Anna Smith", "Bob Jones"]
    result = run(gallery, ["remove", "Bob Jones"], config, input="y\n")
    assert result.exit_code == 0 and "removed Bob Jones from the gallery (1 face template erased)" in result.stdout


def test_erasure_request_for_someone_no_longer_enrolled(config, enrolled):
    from logs.store import AttendanceEvent, AttendanceStore

    with AttendanceStore(config.paths.attendance) as store:
        store.record(
            AttendanceEvent("Carl Former", "check-in", datetime(2025, 1, 3, 8, tzinfo=UTC), 60, 0.3, "camera:0", "t")
        )
    result = run(gallery, ["remove", "Carl Former", "--with-logs", "--yes"], config)
    assert result.exit_code == 0, result.output
    assert "Carl Former is not in the gallery" in result.stdout
    assert "erased 1 attendance event of Carl Former" in result.stdout
    assert run(gallery, ["remove", "Nobody", "--with-logs", "--yes"], config).exit_code == 1


def test_a_stick_is_told_when_the_terminal_cannot_enrol(config, tmp_path):
    """No model on the terminal: the stick still gets a report saying why, and the gallery is untouched."""
    stick = tmp_path / "stick"
    (stick / "images").mkdir(parents=True)
    (stick / "images" / "anna_smith.jpg").write_bytes(b"\xff\xd8not really")
    result = run(enroll_stick, ["--mount-point", str(stick)], config)
    assert result.exit_code == 1
    text = (stick / "clockface-report.txt").read_text(encoding="utf-8")
    assert "GALLERY NOT CHANGED: enrolment failed, the previous gallery stays in force: model not found" in text
    assert not config.paths.gallery.exists()
    plain = run(enroll, [str(stick / "images")], config)
    assert (
        plain.exit_code == 1
        and plain.stderr.startswith("clockface: error: model not found")
        and plain.stderr.count("\n") == 1
    )
