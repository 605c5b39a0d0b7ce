"""A hostile USB stick, built at test time: every kind of file a stick can hold.

Real photos come from ../shared/faces and the rest is synthetic; nothing here
is an image in the repository. `build_hostile_stick` lays the stick out and
returns what the enrolment report must say about each file, so a test can
enrol it with the real command and check the CSV the command writes.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.vision.detect import FaceDetector

BOMB_SIDE = 30000  # 900 megapixels: 2.7 GB as BGR, from a file of about 1 MB


@dataclass(frozen=True)
class Expected:
    outcome: str  # the CSV's outcome column, e.g. "enrolled", "unreadable file"
    detail: str = ""  # a piece of the detail column


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


def face_width_of(image: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, width) of the largest face in a source photo (Haar: the scale to place it by)."""
    box = FaceDetector().detect(image)[0]
    return box.x + box.w / 2, box.y + box.h / 2, box.w


def placed_face(source: Path, canvas: tuple[int, int], face_width: float, centre=(0.5, 0.45)) -> np.ndarray:
    """The photo scaled (cv2.resize) so its face is `face_width` px wide, on a
    canvas of `canvas` (width, height) filled with the photo's mean colour."""
    image = _read(source)
    cx, cy, w = face_width_of(image)
    s = face_width / w
    big = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    width, height = canvas
    out = np.empty((height, width, 3), np.uint8)
    out[:] = big.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    ox, oy = int(centre[0] * width - cx * s), int(centre[1] * height - cy * s)
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(width, ox + big.shape[1]), min(height, oy + big.shape[0])
    out[y0:y1, x0:x1] = big[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


def face_filling(source: Path, side: int) -> np.ndarray:
    """The face's own square (its detected box), scaled to `side` px: a face as wide as the photo."""
    image = _read(source)
    cx, cy, w = face_width_of(image)
    x0, y0 = int(max(0, cx - w / 2)), int(max(0, cy - w / 2))
    crop = image[y0 : y0 + int(w), x0 : x0 + int(w)]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid grey PNG of side x side black pixels, compressed to about 1 MB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + pixels
    rows_per_block = 1000
    parts = [compressor.compress(row * rows_per_block) for _ in range(side // rows_per_block)]
    parts.append(compressor.compress(row * (side % rows_per_block)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) says width x height."""
    ok, encoded = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    """A BMP header for width x height 24-bit pixels, with almost none of them."""
    ok, encoded = cv2.imencode(".bmp", np.zeros((2, 2, 3), np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def exif_rotated_jpeg(source: Path) -> bytes:
    """The photo stored sideways with EXIF orientation 6: upright only if EXIF is honoured."""
    from PIL import Image

    upright = Image.open(source).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = stored.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif, quality=92)
    return buf.getvalue()


def _png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def _jpeg(image: np.ndarray, quality: int = 88) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def build_hostile_stick(stick: Path, outside: Path, faces: Path) -> dict[str, Expected]:
    """Lay out `stick/images/` (stick should be its own file system, e.g. a tmpfs;
    `outside` another one) and return file (relative to images/) -> expected outcome.

    Hidden files are laid out too, but must not appear in the report at all."""
    images = stick / "images"
    images.mkdir(parents=True)
    expected: dict[str, Expected] = {}

    def put(rel: str, data: bytes, want: Expected | None) -> Path:
        path = images / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if want is not None:
            expected[rel] = want
        return path

    enrolled = Expected("enrolled")
    unreadable = Expected("unreadable file")
    # Broken files.
    put("empty_file.jpg", b"", Expected("unreadable file", "file is empty"))
    real = (faces / "angelina_jolie" / "1.jpg").read_bytes()
    put("truncated_photo.jpg", real[: len(real) // 20], unreadable)
    put("not_really_a_photo.jpg", b"Dear all, the photos are attached.\n" * 20, unreadable)
    put("notes.txt", b"bring the stick back\n", Expected("not an image", "not an image file"))
    # Bombs: tiny files that declare 900 megapixels, refused from the header.
    too_large = Expected("unreadable file", f"image too large ({BOMB_SIDE} x {BOMB_SIDE})")
    put("bomb_png.png", png_bomb(), too_large)
    put("bomb_jpeg.jpg", jpeg_claiming(BOMB_SIDE, BOMB_SIDE), too_large)
    put("bomb_bmp.bmp", bmp_claiming(BOMB_SIDE, BOMB_SIDE), too_large)
    # Huge but ordinary: a 48 MP phone photo with a normal face, a small face, a face filling the photo.
    put("katy_perry.jpg", _jpeg(placed_face(faces / "katy_perry" / "1.jpg", (8000, 6000), 1100)), enrolled)
    put("jack_dorsey.jpg", _jpeg(placed_face(faces / "jack_dorsey" / "2.jpg", (8000, 6000), 400)), enrolled)
    put("barack_obama.jpg", _jpeg(face_filling(faces / "barack_obama" / "1.jpg", 4000)), enrolled)
    # Pixel formats.
    put("angelina_jolie.jpg", exif_rotated_jpeg(faces / "angelina_jolie" / "1.jpg"), enrolled)
    clooney = _read(faces / "george_clooney" / "1.jpg")
    put("george_clooney.png", _png(cv2.cvtColor(clooney, cv2.COLOR_BGR2GRAY)), enrolled)
    musk = cv2.cvtColor(_read(faces / "elon_musk" / "1.jpg"), cv2.COLOR_BGR2BGRA)
    musk[..., 3] = 200
    put("elon_musk.png", _png(musk), enrolled)
    put("matt_damon.png", _png(_read(faces / "matt_damon" / "1.jpg").astype(np.uint16) * 257), enrolled)
    # Names.
    put("José Núñez.jpg", (faces / "jennifer_aniston" / "1.jpg").read_bytes(), enrolled)
    put('=HYPERLINK("http:__x")_cmd.jpg', (faces / "scarlett_johansson" / "1.jpg").read_bytes(), enrolled)
    # Duplicates and group photos.
    sundar = (faces / "sundar_pichai" / "1.jpg").read_bytes()
    put("sundar_pichai/1.jpg", sundar, enrolled)
    put("sundar_pichai/copy of 1.jpg", sundar, Expected("duplicate photo", "same file as 1.jpg"))
    put("team_photo.jpg", (faces / "_multi" / "1.jpg").read_bytes(), Expected("several faces"))
    # Hidden files (macOS resource forks, trash): not reported at all.
    put("._katy_perry.jpg", b"\x00\x05\x16\x07", None)
    put(".hidden/someone.jpg", sundar, None)
    # Symbolic links: inside the stick (followed), off the stick (reported), broken, looping.
    (stick / "originals").mkdir()
    (stick / "originals" / "kit.jpg").write_bytes((faces / "kit_harington" / "1.jpg").read_bytes())
    (images / "kit_harington.jpg").symlink_to("../originals/kit.jpg")
    expected["kit_harington.jpg"] = enrolled
    (outside / "zuck.jpg").write_bytes((faces / "mark_zuckerberg" / "1.jpg").read_bytes())
    (images / "mark_zuckerberg.jpg").symlink_to(outside / "zuck.jpg")
    expected["mark_zuckerberg.jpg"] = Expected("not an image", "symbolic link leaves this file system")
    (outside / "lmm").mkdir()
    (outside / "lmm" / "1.png").write_bytes((faces / "lin_manuel_miranda" / "1.png").read_bytes())
    (images / "lin_manuel_miranda").symlink_to(outside / "lmm")
    expected["lin_manuel_miranda"] = Expected("not an image", "symbolic link leaves this file system")
    (images / "gone.jpg").symlink_to("nowhere.jpg")
    expected["gone.jpg"] = Expected("not an image", "broken symbolic link")
    (images / "loop.jpg").symlink_to("loop.jpg")
    expected["loop.jpg"] = Expected("not an image", "symbolic link loop")
    put("alex_lacamoire/1.jpg", (faces / "alex_lacamoire" / "1.jpg").read_bytes(), enrolled)
    (images / "alex_lacamoire" / "again").symlink_to("..")
    expected["alex_lacamoire/again"] = Expected("not an image", "symbolic link loop")
    # FIFOs and devices: reported, never opened (opening a FIFO blocks until a writer comes).
    os.mkfifo(images / "fifo.jpg")
    expected["fifo.jpg"] = Expected("not an image", "a FIFO")
    os.mkfifo(images / "sundar_pichai" / "pipe.jpg")
    expected["sundar_pichai/pipe.jpg"] = Expected("not an image", "a FIFO")
    with contextlib.suppress(OSError):  # needs CAP_MKNOD; the FIFOs still cover non-regular files
        os.mknod(images / "null.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        expected["null.jpg"] = Expected("not an image", "a character device")
    return expected
