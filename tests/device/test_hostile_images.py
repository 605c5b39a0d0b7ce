"""Photos that would hurt a Pi: bombs refused from the header in every format,
big photos decoded small, FIFOs never opened, small and huge faces in 48 MP photos."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import device.camera.images as images
from device.camera.frames import SourceError
from device.camera.images import ImageReadError, read_image
from device.camera.sources import open_source
from tests.conftest import shared_path
from tests.gallery.hostile_stick import face_filling, placed_face, png_bomb


def _pil_bytes(fmt: str, size=(64, 48)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buf, format=fmt)
    return buf.getvalue()


FORMATS = {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP", ".tiff": "TIFF"}


@pytest.mark.parametrize("suffix", [*FORMATS, ".heic"])
def test_every_format_is_refused_above_the_pixel_limit_from_its_header(tmp_path, monkeypatch, suffix):
    if suffix == ".heic":
        pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC needs the optional pillow-heif")
        pillow_heif.register_heif_opener()
        if "HEIF" not in __import__("PIL.Image").Image.SAVE:
            pytest.skip("this pillow-heif cannot encode HEIC")
        data = _pil_bytes("HEIF")
    else:
        data = _pil_bytes(FORMATS[suffix])
    path = tmp_path / f"photo{suffix}"
    path.write_bytes(data)
    assert read_image(path).shape[:2] == (48, 64)  # readable as it is
    monkeypatch.setattr(images, "MAX_PIXELS", 64 * 48 - 1)
    with pytest.raises(ImageReadError, match=r"image too large \(64 x 48\)"):
        read_image(path)


def test_png_bomb_is_refused(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(ImageReadError, match=r"bomb.png: image too large \(30000 x 30000\)"):
        read_image(bomb)


def test_big_jpeg_is_decoded_reduced(tmp_path):
    path = tmp_path / "phone.jpg"
    data = cv2.imencode(".jpg", np.full((6000, 8000, 3), 100, np.uint8))[1]
    path.write_bytes(data.tobytes())
    assert read_image(path).shape[:2] == (3000, 4000)
    assert images.jpeg_reduction(8000, 6000)[0] == 2 and images.jpeg_reduction(4000, 3000)[0] == 1


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    errors: list[Exception] = []

    def read() -> None:
        try:
            read_image(fifo)
        except ImageReadError as exc:
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the old code's open() so the test ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("reading a FIFO blocked")
    assert "not a regular file" in str(errors[0])


def test_folder_with_nothing_usable_is_one_line(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not a picture")
    source = open_source(str(tmp_path))
    with pytest.raises(SourceError) as exc:
        list(source.frames())
    message = str(exc.value)
    assert "no usable images" in message and "empty.jpg: file is empty" in message and "\n" not in message


@pytest.fixture(scope="module")
def model(dlib_model, tmp_path_factory):
    from device.config import parse_config
    from device.terminal.assembly import load_model

    data = tmp_path_factory.mktemp("data")
    return load_model(parse_config({"paths": {"data_dir": str(data), "model": str(dlib_model)}}, env={}))


@pytest.mark.parametrize(
    ("person", "make"),
    [
        ("katy_perry/1.jpg", lambda src: placed_face(src, (8000, 6000), 1100)),  # 48 MP, a normal face
        ("jack_dorsey/2.jpg", lambda src: placed_face(src, (8000, 6000), 400)),  # 5 % of the width
        ("katy_perry/1.jpg", lambda src: placed_face(src, (6000, 8000), 300)),  # 5 %, portrait
        ("barack_obama/1.jpg", lambda src: face_filling(src, 4000)),  # the face is the photo
    ],
)
def test_faces_from_5_to_100_percent_of_a_big_photo_enrol(tmp_path: Path, model, person, make):
    from device.enrolment.photo_rules import EnrolRules, Outcome, examine_photo
    from gallery.layout import Photo

    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), make(shared_path("faces", person)), [cv2.IMWRITE_JPEG_QUALITY, 88])
    result = examine_photo(Photo("x", path), model.pipeline, EnrolRules())
    assert result.outcome is Outcome.ENROLLED, result.detail
