"""Refusing a database must not change it: every command, through the real CLI.

A file from a newer clockface (user_version 99) or another program's SQLite
file is refused with a one-line reason and a non-zero exit, and afterwards
its bytes are exactly what they were, with no -wal/-shm/-journal beside it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from device.cli.main import main
from gallery.store import ModelBinding, Template, write_gallery
from logs.store import AttendanceStore

SIDE_FILES = ("-wal", "-shm", "-journal")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def side_files(path: Path) -> list[str]:
    return [suffix for suffix in SIDE_FILES if path.with_name(path.name + suffix).exists()]


def foreign_file(path: Path) -> None:
    """Another program's database (say, a photo tool's) at the configured path."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY, vector BLOB)")
    conn.execute("INSERT INTO embeddings (vector) VALUES (x'00ff')")
    conn.commit()
    conn.close()


def future_attendance(path: Path) -> None:
    """A real attendance log (WAL mode), then marked as written by a future clockface."""
    AttendanceStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def future_gallery(path: Path) -> None:
    write_gallery(
        path, ModelBinding("dlib-resnet-v1", "cd" * 32, 128), [Template("Ann", "ann.jpg", np.ones(128, np.float32))]
    )
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


BAD = {
    "attendance": {"foreign": (foreign_file, "not an attendance database"), "future": (future_attendance, None)},
    "gallery": {"foreign": (foreign_file, "not a clockface gallery"), "future": (future_gallery, None)},
}

COMMANDS = {
    "attendance": {
        "run": lambda faces: ["run", "--source", str(faces), "--max-frames", "1"],
        "logs erase": lambda faces: ["logs", "erase", "Ann", "--yes"],
        "logs today": lambda faces: ["logs", "today"],
    },
    "gallery": {
        "run": lambda faces: ["run", "--source", str(faces), "--max-frames", "1"],
        "gallery list": lambda faces: ["gallery", "list"],
        "enroll --add": lambda faces: ["enroll", "--add", str(faces)],
        "gallery remove": lambda faces: ["gallery", "remove", "Ann", "--yes"],
    },
}

CASES = [(db, bad, command) for db, commands in COMMANDS.items() for bad in BAD[db] for command in commands]


@pytest.mark.parametrize(("db", "bad", "command"), CASES, ids=[f"{d}-{b}-{c.replace(' ', '_')}" for d, b, c in CASES])
def test_refused_database_is_left_byte_for_byte(
    tmp_path: Path, dlib_model: Path, db: str, bad: str, command: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    target = data / ("attendance.db" if db == "attendance" else "gallery.db")
    make, wording = BAD[db][bad]
    make(target)
    assert side_files(target) == []
    before = sha256(target)
    config = tmp_path / "clockface.toml"
    config.write_text(f'[paths]\ndata_dir = "{data}"\nmodel = "{dlib_model}"\n')
    faces = tmp_path / "frames"
    faces.mkdir()
    # A real JPEG frame with nobody in it (the shared photos are not visible from every worktree).
    cv2.imwrite(str(faces / "empty_room.jpg"), np.full((360, 640, 3), 128, np.uint8))

    result = CliRunner().invoke(main, ["--config", str(config), *COMMANDS[db][command](faces)])

    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    output = result.output
    if wording is None:
        assert "schema version 99" in output and "reads up to" in output and "upgrade clockface" in output, output
    else:
        assert wording in output, output
    assert sha256(target) == before
    assert side_files(target) == []


def test_future_gallery_json_list_is_refused_too(tmp_path: Path) -> None:
    """Read-only commands included: `gallery list --json` does not print a newer gallery as if it were ours."""
    data = tmp_path / "data"
    data.mkdir()
    future_gallery(data / "gallery.db")
    config = tmp_path / "clockface.toml"
    config.write_text(f'[paths]\ndata_dir = "{data}"\nmodel = "{tmp_path / "none.tflite"}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "gallery", "list", "--json"])
    assert result.exit_code != 0
    assert "schema version 99; this clockface reads up to 1" in result.output
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.output)
