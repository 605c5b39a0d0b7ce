"""A model whose sidecar disagrees with its TFLite file: one line saying what to do, never a traceback.

Each case copies the real converted dlib model into tmp_path and tampers with
its `<name>.json`; the commands that load a model (`enroll`, `eval`) must each
print exactly one line on stderr and exit 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from device.cli.main import main
from tests.conftest import REPO_ROOT


def _set_size(card: dict) -> dict:
    return {**card, "embedding_size": 64}


def _set_metric(card: dict) -> dict:
    return {**card, "metric": "manhattan"}


def _drop_key(card: dict) -> dict:
    return {k: v for k, v in card.items() if k != "metric"}


def _eyes_only_chip(card: dict) -> dict:
    """A sidecar as written before 5-point alignment: two eye points, no landmark template."""
    size = card["chip"]["size"]
    old = {"size": size, "left_eye": [0.317, 0.315], "right_eye": [0.669, 0.316], "box_left_eye": [0.32, 0.41]}
    return {**card, "chip": old}


TAMPERS = {
    "wrong embedding size": (lambda card: json.dumps(_set_size(card)), "embedding_size 64"),
    "unknown metric": (lambda card: json.dumps(_set_metric(card)), "unknown metric 'manhattan'"),
    "a JSON list": (lambda card: json.dumps([card]), "JSON list, not an object"),
    "a missing key": (lambda card: json.dumps(_drop_key(card)), "missing field metric"),
    "a sidecar from before landmarks": (
        lambda card: json.dumps(_eyes_only_chip(card)),
        "chip.landmarks is missing (the sidecar predates 5-point alignment)",
    ),
    "not JSON at all": (lambda card: "this is not JSON {", "not valid JSON"),
}


def copy_model(dlib_model: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".tflite", ".json"):
        shutil.copy(dlib_model.with_suffix(suffix), folder / dlib_model.with_suffix(suffix).name)
    for mtcnn in dlib_model.parent.glob("mtcnn*"):  # the face detector lives beside the model
        shutil.copy(mtcnn, folder / mtcnn.name)
    return folder / dlib_model.name


def write_config(tmp_path: Path, model: Path) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "photos").mkdir(exist_ok=True)
    config = tmp_path / "clockface.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\nmodel = "{model}"\n')
    return config


@pytest.fixture
def tampered(request, tmp_path, dlib_model):
    """(config file, expected phrase) for a copy of the real model with one sidecar defect."""
    make, phrase = TAMPERS[request.param]
    model = copy_model(dlib_model, tmp_path / "models")
    card = json.loads(model.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(make(card))
    return write_config(tmp_path, model), phrase


@pytest.mark.parametrize("tampered", list(TAMPERS), indirect=True)
@pytest.mark.parametrize("command", ["enroll", "eval"])
def test_a_bad_sidecar_is_one_line_with_what_to_do(tampered, command, tmp_path, monkeypatch):
    monkeypatch.delenv("CLOCKFACE_DEBUG", raising=False)
    config, phrase = tampered
    result = CliRunner().invoke(main, ["--config", str(config), command, str(tmp_path / "photos")])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("clockface: error: "), result.stderr
    assert phrase in result.stderr
    assert "re-run `clockface convert dlib-resnet-v1 --output" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "data" / "gallery.db").exists()


def cli(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m device.cli ...` as its own process: the real stderr, native (LiteRT) output included."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CLOCKFACE_DEBUG", "INVOCATION_ID", "JOURNAL_STREAM")}
    environ["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "device.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**environ, **(env or {})},
        timeout=120,
    )


def test_traceback_option_prints_the_stack(tmp_path, dlib_model):
    model = copy_model(dlib_model, tmp_path / "models")
    card = json.loads(model.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps(_set_size(card)))
    config = write_config(tmp_path, model)
    plain = cli(tmp_path, "--config", str(config), "enroll", str(tmp_path / "photos"))
    assert plain.returncode == 1 and plain.stderr.count("\n") == 1, plain.stderr
    traced = cli(tmp_path, "--traceback", "--config", str(config), "enroll", str(tmp_path / "photos"))
    assert traced.returncode == 1
    assert traced.stderr.startswith("Traceback (most recent call last):"), traced.stderr
    assert "EmbedderError: dlib-resnet-v1.tflite outputs 128-d embeddings" in traced.stderr


def test_loading_the_model_prints_no_litert_info_line(tmp_path, dlib_model):
    """LiteRT writes `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` to fd 2 per interpreter."""
    config = write_config(tmp_path, copy_model(dlib_model, tmp_path / "models"))
    done = cli(tmp_path, "--config", str(config), "eval", str(tmp_path / "photos"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"] == "dlib-resnet-v1"  # the model really was loaded
    assert "XNNPACK" not in done.stderr, done.stderr
