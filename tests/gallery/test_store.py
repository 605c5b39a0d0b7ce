"""The gallery database: atomic writes, person records, erasing a person without a trace."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gallery.store import (
    GalleryError,
    GalleryModelMismatch,
    GalleryStore,
    ModelBinding,
    PersonRecord,
    Template,
    gallery_lock,
    remove_person,
    write_gallery,
)
from tests.gallery.traces import db_files, pieces_left, raw_bytes

MODEL = ModelBinding("test-model", "a" * 64, 128)


def _templates(rng, people: dict[str, int]) -> list[Template]:
    return [
        Template(name, f"{name.lower().replace(' ', '_')}_{i}.jpg", rng.standard_normal(128).astype(np.float32))
        for name, n in people.items()
        for i in range(n)
    ]


def test_records_are_kept_and_every_write_is_a_new_file(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "gallery.db"
    templates = _templates(rng, {"Anna Smith": 2, "Bob Jones": 1})
    write_gallery(path, MODEL, templates, people={"Anna Smith": PersonRecord("2024-01-02T03:04:05+00:00", "E-17")})
    first = os.stat(path)
    people = {p.name: p for p in GalleryStore(path).people()}
    assert people["Anna Smith"].photos == 2 and people["Anna Smith"].employee_id == "E-17"
    assert people["Anna Smith"].enrolled_at == "2024-01-02T03:04:05+00:00"
    assert people["Bob Jones"].employee_id is None
    write_gallery(path, MODEL, templates)
    second = os.stat(path)
    # The recogniser reloads when (st_ino, st_mtime_ns) changes: the inode alone must do.
    assert second.st_ino != first.st_ino
    assert [p.name for p in db_files(path)] == ["gallery.db"]


def test_templates_from_another_model_are_refused(tmp_path):
    path = tmp_path / "gallery.db"
    write_gallery(path, MODEL, _templates(np.random.default_rng(2), {"Anna": 1}))
    with pytest.raises(GalleryModelMismatch) as exc:
        GalleryStore(path).templates(ModelBinding("other", "b" * 64, 128))
    assert "re-enrol with `clockface enroll DIR`" in str(exc.value)


def test_remove_person_leaves_no_trace_in_any_database_file(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "gallery.db"
    templates = _templates(rng, {"Anna Smith": 3, "Bob Jones": 2})
    write_gallery(path, MODEL, templates)
    before = os.stat(path).st_ino
    removed = remove_person(path, "anna smith")  # names match like file names do
    assert removed.name == "Anna Smith" and removed.templates == 3
    assert os.stat(path).st_ino != before  # a running recogniser notices
    raw = raw_bytes(path)
    for t in templates:
        blob = t.embedding.astype("<f4").tobytes()
        if t.person == "Anna Smith":
            assert pieces_left(blob, raw) == 0, "a piece of Anna's template survived"
        else:
            assert blob in raw
    assert b"Anna Smith" not in raw and b"anna_smith" not in raw
    assert [t.person for t in GalleryStore(path).templates(MODEL)] == ["Bob Jones", "Bob Jones"]


def test_remove_unknown_person_names_who_is_there(tmp_path):
    path = tmp_path / "gallery.db"
    write_gallery(path, MODEL, _templates(np.random.default_rng(4), {"Anna Smith": 1}))
    with pytest.raises(GalleryError, match=r"no one called 'Zed' in the gallery \(enrolled: Anna Smith\)"):
        remove_person(path, "Zed")


def test_remove_works_whatever_model_made_the_gallery(tmp_path):
    path = tmp_path / "gallery.db"
    write_gallery(path, ModelBinding("old", "c" * 64, 4), [Template("Old Timer", "x.jpg", np.ones(4, np.float32))])
    assert remove_person(path, "Old Timer").templates == 1
    assert GalleryStore(path).people() == []


def test_failed_write_leaves_the_old_gallery_and_no_temp_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    path = tmp_path / "gallery.db"
    write_gallery(path, MODEL, _templates(rng, {"Anna": 1}))
    old = path.read_bytes()
    import gallery.store as store_mod

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod.os, "replace", boom)
    with pytest.raises(OSError):
        write_gallery(path, MODEL, _templates(rng, {"Bob": 1}))
    assert path.read_bytes() == old
    assert [p.name for p in db_files(path)] == ["gallery.db"]


def test_writers_are_serialised(tmp_path):
    path = tmp_path / "gallery.db"
    order = []
    held = threading.Event()

    def hold():
        with gallery_lock(path):
            order.append("first in")
            held.set()
            time.sleep(0.2)  # a second writer that is not kept out would get in meanwhile
            order.append("first out")

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(10)
    with gallery_lock(path):
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]


def test_unreadable_gallery_is_one_line(tmp_path):
    path = tmp_path / "gallery.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError) as exc:
        GalleryStore(path).people()
    assert "re-enrol" in str(exc.value) and "\n" not in str(exc.value)
    assert isinstance(sqlite3.sqlite_version, str)


# --- an interrupted enrolment's temporary file ---------------------------------------

INTERRUPTED_WRITER = """
import os, sys
import numpy as np
import gallery.store as store
from gallery.store import ModelBinding, Template, write_gallery

def power_cut(tmp, path):  # the file is complete but the rename never happens
    os._exit(9)

store._install = power_cut
write_gallery(sys.argv[1], ModelBinding("test-model", "a" * 64, 128), [Template("Eve", "eve.jpg", np.ones(128, np.float32))])
"""


def _interrupted_enrolment(path: Path) -> Path:
    """A real process killed between filling `<gallery>.new` and renaming it."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WRITER, str(path)],
        env={**os.environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 9, done.stderr
    stale = path.with_name(path.name + ".new")
    assert stale.exists()
    return stale


def test_stale_replacement_is_discarded_at_start_but_not_under_a_writer(tmp_path: Path) -> None:
    from gallery.store import discard_stale_replacement

    path = tmp_path / "gallery.db"
    write_gallery(path, MODEL, _templates(np.random.default_rng(0), {"Ann": 1}))
    stale = _interrupted_enrolment(path)
    assert [p.name for p in GalleryStore(path).people()] == ["Ann"]  # the old gallery is in force

    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with gallery_lock(path):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(10)
        assert discard_stale_replacement(path) is False  # another writer may be filling it
        assert stale.exists()
    finally:
        release.set()
        thread.join()
    assert discard_stale_replacement(path) is True
    assert not stale.exists()
    assert discard_stale_replacement(path) is False


def test_service_start_removes_the_stale_replacement(tmp_path: Path, dlib_model: Path) -> None:
    """`clockface run` after a power cut mid-enrolment: no gallery.db.new is left behind."""
    import cv2
    from click.testing import CliRunner

    from device.cli.main import main

    data = tmp_path / "data"
    data.mkdir()
    path = data / "gallery.db"
    stale = _interrupted_enrolment(path)  # the very first enrolment was interrupted: no gallery yet
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "empty.jpg"), np.full((360, 640, 3), 128, np.uint8))
    config = tmp_path / "clockface.toml"
    config.write_text(f'[paths]\ndata_dir = "{data}"\nmodel = "{dlib_model}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "run", "--source", str(frames), "--max-frames", "1"])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert not path.exists()


def test_extra_meta_is_written_and_survives_a_removal_but_cannot_rebind_the_model(tmp_path):
    path = tmp_path / "gallery.db"
    templates = _templates(np.random.default_rng(5), {"Anna Smith": 1, "Bob Jones": 1})
    write_gallery(path, MODEL, templates, meta={"central_version": "7", "model_sha256": "f" * 64})
    assert GalleryStore(path).meta()["central_version"] == "7"
    assert GalleryStore(path).binding() == MODEL  # write_gallery's own keys are not overridden
    remove_person(path, "Anna Smith")
    assert GalleryStore(path).meta()["central_version"] == "7"
