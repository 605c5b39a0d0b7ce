"""`clockface run` end to end on real faces, and its one-line failures.

The clip (../shared/faces/_video/1.mp4, 640x360) is White House footage of
Lin-Manuel Miranda performing. Who should be logged, and why:
- Lin-Manuel Miranda: faces the camera, 90-125 px wide, for most of the clip. Expected, once.
- Alex Lacamoire: at the piano in the first frames his face is ~30 px wide
  (below recognition.min_face_px = 40: too few pixels to tell people apart),
  and his close-up (frames ~20-80) is in profile, which a frontal model cannot
  match. Not recognisably in it for this terminal: not expected.
- Barack Obama: in the audience near the end, turned three-quarters away with
  a hand at his chin; the frontal detector does not find his face. Not expected.
Everyone else in the clip is not enrolled, so nobody else may be logged.
"""

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from device.cli.main import main
from tests.conftest import shared_path

EXPECTED_IN_CLIP = {"Lin Manuel Miranda"}


def write_config(tmp_path, model, **tables):
    lines = [f'[paths]\ndata_dir = "{tmp_path / "data"}"\nmodel = "{model}"']
    for name, values in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "clockface.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def one_line_error(result):
    """The one error line; informational `clockface: ...` lines (logging) may come before it."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    lines = [line for line in lines if line.startswith("clockface: error: ") or not line.startswith("clockface: ")]
    assert len(lines) == 1 and lines[0].startswith("clockface: error: "), result.output
    return lines[0]


@pytest.fixture
def enrolled(tmp_path, dlib_model):
    """The whole shared photo set enrolled through the real `clockface enroll`."""
    config = write_config(tmp_path, dlib_model)
    result = cli(config, "enroll", str(shared_path("faces")))
    assert result.exit_code == 0, result.output
    return config


@pytest.mark.slow
def test_clip_logs_each_expected_person_once(enrolled, tmp_path):
    clip = shared_path("faces", "_video", "1.mp4")
    result = cli(enrolled, "run", "--source", str(clip), "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    people = [e["person"] for e in events]
    assert sorted(people) == sorted(EXPECTED_IN_CLIP), people  # each once, nobody else
    assert all(e["event_type"] == "check-in" for e in events)
    rows = sqlite3.connect(tmp_path / "data" / "attendance.db").execute("SELECT person, source FROM events").fetchall()
    assert sorted(r[0] for r in rows) == sorted(EXPECTED_IN_CLIP)
    assert rows[0][1] == "video:1.mp4"
    # Running the clip again within the cooldown logs nobody twice.
    again = cli(enrolled, "run", "--source", str(clip), "--json")
    assert [line for line in again.stdout.splitlines() if line.startswith("{")] == []
    today = cli(enrolled, "logs", "today")
    assert "Lin Manuel Miranda" in today.output


def test_no_camera_says_so_and_suggests_source(tmp_path, dlib_model):
    config = write_config(tmp_path, dlib_model, camera={"source": "camera:7"})
    line = one_line_error(cli(config, "run"))
    assert "no camera" in line and "--source" in line


def test_missing_model_explains_setup(tmp_path):
    config = write_config(tmp_path, tmp_path / "nowhere.tflite")
    photo_dir = tmp_path / "frames"
    photo_dir.mkdir()
    shutil.copy(shared_path("faces", "angelina_jolie", "1.jpg"), photo_dir / "1.jpg")
    line = one_line_error(cli(config, "run", "--source", str(photo_dir)))
    assert "model not found" in line and "setup.sh" in line


def test_truncated_model_is_refused(tmp_path, dlib_model):
    model = tmp_path / "m" / dlib_model.name
    model.parent.mkdir()
    model.write_bytes(dlib_model.read_bytes()[: 1 << 20])
    shutil.copy(dlib_model.with_suffix(".json"), model.with_suffix(".json"))
    config = write_config(tmp_path, model)
    line = one_line_error(cli(config, "run", "--source", str(shared_path("faces", "_noface"))))
    assert "does not match the sha256" in line


def test_gallery_from_another_model_is_refused(tmp_path, dlib_model):
    from gallery.store import ModelBinding, Template, write_gallery

    config = write_config(tmp_path, dlib_model)
    import numpy as np

    write_gallery(
        tmp_path / "data" / "gallery.db",
        ModelBinding("vggface-resnet50", "ab" * 32, 2048),
        [Template("Ann", "ann.jpg", np.ones(2048, np.float32))],
    )
    line = one_line_error(cli(config, "run", "--source", str(shared_path("faces", "_noface"))))
    assert "vggface-resnet50" in line and "clockface enroll" in line


def test_missing_attendance_folder_is_one_line(tmp_path, dlib_model):
    config = write_config(tmp_path, dlib_model)
    config.write_text(config.read_text() + f'attendance_db = "{tmp_path / "gone" / "attendance.db"}"\n')
    line = one_line_error(cli(config, "run", "--source", str(shared_path("faces", "_noface"))))
    assert "does not exist" in line


def test_read_only_attendance_folder_is_one_line(tmp_path, dlib_model, readonly_dir):
    config = write_config(tmp_path, dlib_model)
    config.write_text(config.read_text() + f'attendance_db = "{readonly_dir / "attendance.db"}"\n')
    line = one_line_error(cli(config, "run", "--source", str(shared_path("faces", "_noface"))))
    assert "attendance.db" in line
    assert list(readonly_dir.iterdir()) == []


def fill(disk):
    try:
        with open(disk / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass  # ENOSPC: the disk is full now


def test_full_disk_at_start_is_one_line(tmp_path, dlib_model, tiny_disk):
    config = write_config(tmp_path, dlib_model)
    config.write_text(config.read_text() + f'attendance_db = "{tiny_disk / "attendance.db"}"\n')
    fill(tiny_disk)
    line = one_line_error(cli(config, "run", "--source", str(shared_path("faces", "_noface"))))
    assert "disk full" in line


def test_disk_filling_up_keeps_the_event_and_reports(tmp_path, dlib_model, tiny_disk, monkeypatch):
    """The disk fills while the terminal runs: the recognised person's event is
    kept in memory and retried; at the end the run says it could not be saved
    (exit 1), and the database holds no half-written row."""
    import threading

    import cv2

    from device.camera.frames import Frame
    from device.terminal.notify import Notifier
    from device.terminal.service import run_terminal
    from logs.store import AttendanceStore

    config = write_config(tmp_path, dlib_model)
    db = tiny_disk / "attendance.db"
    config.write_text(config.read_text() + f'attendance_db = "{db}"\n')
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_path("faces", "angelina_jolie", "1.jpg"), photos / "angelina_jolie.jpg")
    assert cli(config, "enroll", str(photos)).exit_code == 0
    face = cv2.imread(str(shared_path("faces", "angelina_jolie", "2.jpg")))

    class DiskFillsUp:
        live, name = False, "camera:test"

        def frames(self):
            fill(tiny_disk)
            for i in range(6):
                yield Frame(face, i, 0.0)

        def close(self):
            pass

    import device.terminal.service as service
    from device.config import load_config

    monkeypatch.setattr(service, "open_source", lambda *a, **k: DiskFillsUp())
    outcome = run_terminal(load_config(config, {}), "x", Notifier(None), threading.Event(), threading.Event())
    assert outcome.logged == []
    assert any("could not be saved" in e and "disk full" in e for e in outcome.errors), outcome.errors
    (tiny_disk / "filler").unlink()
    with AttendanceStore(db, readonly=True) as store:
        assert store.last_event("Angelina Jolie") is None


def test_demo_logs_the_astronaut(tmp_path, dlib_model):
    config = write_config(tmp_path, dlib_model)
    result = cli(config, "demo")
    assert result.exit_code == 0, result.output
    assert "check-in  Eileen Collins" in result.output


def test_read_only_gallery_folder_is_one_line_and_writes_nothing(tmp_path, dlib_model, readonly_dir):
    config = write_config(tmp_path, dlib_model)
    config.write_text(config.read_text() + f'gallery_db = "{readonly_dir / "gallery.db"}"\n')
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_path("faces", "angelina_jolie", "1.jpg"), photos / "angelina_jolie.jpg")
    result = cli(config, "enroll", str(photos))
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("clockface: error: ")]
    assert len(errors) == 1 and "gallery" in errors[0], result.output
    assert list(readonly_dir.iterdir()) == []
