"""Helpers for enrolment tests on real photos laid out as a USB stick in tmp_path.

Photos come from ../shared/faces and are copied at run time, never stored in
the repository; tests skip with the reason when ../shared is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import make_config, shared_path


def make_stick(root: Path, files: dict[str, str | bytes], folder: str = "images") -> Path:
    """Lay out a stick: `files` maps a path under images/ to a ../shared/faces photo
    (e.g. "barack_obama/1.jpg") or to literal bytes. Returns the stick's root."""
    faces = shared_path("faces")
    images = root / folder
    images.mkdir(parents=True, exist_ok=True)
    for rel, source in files.items():
        target = images / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(faces / source, target)
    return root


@pytest.fixture
def config(tmp_path: Path, dlib_model: Path):
    return make_config(tmp_path / "data", dlib_model)


def invoke(command, args: list[str], config, **kwargs):
    return CliRunner().invoke(command, [str(a) for a in args], obj=config, catch_exceptions=False, **kwargs)


def invoke_json(command, args: list[str], config) -> tuple[int, dict]:
    result = invoke(command, [*args, "--json"], config)
    return result.exit_code, json.loads(result.stdout)


def photos_by_file(report: dict) -> dict[str, dict]:
    return {p["file"]: p for p in report["photos"]}


def roster(report: dict) -> dict[str, dict]:
    return {p["name"]: p for p in report["roster"]}
