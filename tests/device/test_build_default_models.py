"""systemd/build-default-models.sh: a Pi makes its own default models, without TensorFlow or a workstation.

The script runs as the installer runs it, with the interpreter of a fresh venv that
holds only clockface's device dependencies (no converter extra, no TensorFlow), and
downloads its sources from PyPI. The models it writes must load in the device's
Embedder and MTCNN detector, and nothing but them may be left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.vision.embedder import Embedder
from device.vision.model_card import load_card
from device.vision.mtcnn import MtcnnDetector, load_mtcnn_card
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SCRIPT = REPO_ROOT / "systemd" / "build-default-models.sh"
MODEL_FILES = sorted(
    ["dlib-resnet-v1.tflite", "dlib-resnet-v1.json", "mtcnn.json"]
    + [f"mtcnn-{n}.tflite" for n in ("pnet", "rnet", "onet")]
)


def _pypi_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with clockface and its runtime dependencies only (the device install's `pip install SRC`)."""
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable: the script downloads its sources")
    venv = tmp_path_factory.mktemp("device-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    install = [str(python), "-m", "pip", "install", "-q", "-c", str(REPO_ROOT / "tests" / "constraints.txt")]
    subprocess.run([*install, str(REPO_ROOT)], check=True, env=env, timeout=900)
    probe = subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True, env=env)
    assert probe.returncode != 0, "the device venv must not have TensorFlow"
    return python


@pytest.fixture(scope="module")
def built(device_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    target = tmp_path_factory.mktemp("models")
    scratch = tmp_path_factory.mktemp("scratch")  # TMPDIR and pip's cache: whatever the script leaves shows here
    (scratch / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(scratch / "tmp"), "XDG_CACHE_HOME": str(scratch / "cache")}
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        ["/usr/bin/time", "-v", str(SCRIPT), str(target), str(device_venv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    stats = dict(
        line.strip().split(": ", 1) for line in run.stderr.splitlines() if ": " in line and line.startswith("\t")
    )
    print(
        f"\nbuild-default-models.sh: {stats.get('Elapsed (wall clock) time (h:mm:ss or m:ss)')} wall, "
        f"peak RSS {int(stats.get('Maximum resident set size (kbytes)', 0)) / 1024:.0f} MB"
    )
    return {"target": target, "scratch": scratch, "stdout": run.stdout}


def test_only_the_model_files_are_left(built: dict) -> None:
    assert sorted(p.name for p in built["target"].iterdir()) == MODEL_FILES
    assert list((built["scratch"] / "tmp").iterdir()) == []  # the temporary folder is gone
    assert not (built["scratch"] / "cache").exists()  # and pip kept no cache


def test_the_models_load_in_the_device(built: dict) -> None:
    target = built["target"]
    card = load_card(target / "dlib-resnet-v1.tflite")
    assert "numpy backend" in card.converter_version and card.source_sha256.startswith("55533b28")
    embedder = Embedder(target / "dlib-resnet-v1.tflite")
    chip = np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    vector = embedder.embed(chip)
    assert vector.shape == (128,) and np.isfinite(vector).all()
    mtcnn = load_mtcnn_card(target)
    assert "numpy backend" in mtcnn.converter_version and "SHA-256 pinned" in mtcnn.source
    detector = MtcnnDetector.from_models_dir(target)
    assert detector.detect(np.zeros((120, 160, 3), np.uint8)) == []
