"""Reading photos from disk: the one place images are decoded, and every bad file is one clear error.

A USB stick is untrusted input. A photo is opened without following it into a
FIFO or device (which would block or never end), its pixel count is read from
the header before anything is decoded (an 875 KB PNG can declare 30000 x 30000
pixels, 2.7 GB once decoded), and big photos are decoded reduced or shrunk at
once, so memory stays bounded for every photo that is accepted.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Formats OpenCV decodes (JPEG, PNG, BMP, WebP, TIFF).
OPENCV_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Phone photos, read only when the optional pillow-heif package is installed
# (the error says so per photo when it is not).
HEIC_SUFFIXES = frozenset({".heic", ".heif"})
IMAGE_SUFFIXES = OPENCV_SUFFIXES | HEIC_SUFFIXES

# The largest photo accepted, in pixels. 50 MP admits a 48 MP phone photo
# (8000 x 6000) and refuses the decompression bombs that would take a Pi's RAM.
MAX_PIXELS = 50_000_000
# The largest file read into memory. A 48 MP photo is 10-30 MB as JPEG or HEIC
# and rarely over 100 MB even as a lossless PNG of a photo.
MAX_FILE_BYTES = 100 * 1024 * 1024
# Longest side kept after decoding. A face at 5 % of the width of a photo this
# size is 200 px wide, more than the 150-px chip and the detector need, and the
# decoded image is at most 4000 x 4000 x 3 = 48 MB whatever the photo's size.
MAX_DECODED_SIDE = 4000
_JPEG_REDUCTIONS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


_NEEDS_HEIF = "{name}: HEIC photos need the optional pillow-heif package (pip install pillow-heif), or save it as JPEG"


class ImageReadError(ValueError):
    """The file is missing, empty, truncated, too large, or not an image we can decode."""


@dataclass(frozen=True)
class ImageHeader:
    format: str  # Pillow's name: JPEG, PNG, BMP, WEBP, TIFF, HEIF
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_regular_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path` when it is a regular file of at most `limit` bytes.

    Opened with O_NONBLOCK and checked with fstat on the open descriptor, so a
    FIFO or device never blocks the caller and cannot be swapped in after the check."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageReadError(f"{path.name}: cannot read file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ImageReadError(f"{path.name}: not a regular file")
        if info.st_size > limit:
            raise ImageReadError(
                f"{path.name}: file too large ({info.st_size / 2**20:.0f} MB, at most {limit // 2**20} MB)"
            )
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise ImageReadError(f"{path.name}: cannot read file ({exc.strerror or exc})") from None
    if len(data) > limit:  # it grew after fstat
        raise ImageReadError(f"{path.name}: file too large (at most {limit // 2**20} MB)")
    return data


def read_header(data: bytes, name: str = "image") -> ImageHeader:
    """Format and size from the header alone (Pillow's lazy open decodes no pixels)."""
    from PIL import Image, UnidentifiedImageError

    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our own limit, with our own message
            try:
                with Image.open(io.BytesIO(data)) as im:
                    return ImageHeader(str(im.format), *im.size)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageReadError(f"{name}: not a readable image (corrupt or unsupported format)") from None


def _register_heif() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def check_size(header: ImageHeader, name: str) -> None:
    if header.pixels > MAX_PIXELS:
        raise ImageReadError(
            f"{name}: image too large ({header.width} x {header.height}); at most {MAX_PIXELS // 1_000_000} megapixels"
        )


def jpeg_reduction(width: int, height: int, max_side: int = MAX_DECODED_SIDE) -> tuple[int, int]:
    """(factor, cv2 flag) for decoding a JPEG at 1/2, 1/4 or 1/8 scale: the largest
    reduction that still leaves the longest side at least `max_side`."""
    longest = max(width, height)
    for factor, flag in _JPEG_REDUCTIONS:
        if longest // factor >= max_side:
            return factor, flag
    return 1, cv2.IMREAD_COLOR


def shrink(image: np.ndarray, max_side: int = MAX_DECODED_SIDE) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def read_image(path: Path) -> np.ndarray:
    """Decode `path` to an 8-bit BGR array, honouring EXIF orientation, at most
    MAX_DECODED_SIDE on its longest side.

    cv2.imdecode from bytes (not cv2.imread) so that the file is opened once,
    safely, and a read failure can be told apart from a decode failure.
    """
    path = Path(path)
    data = read_regular_file(path)
    if not data:
        raise ImageReadError(f"{path.name}: file is empty")
    if path.suffix.lower() in HEIC_SUFFIXES and not _register_heif():
        raise ImageReadError(_NEEDS_HEIF.format(name=path.name))
    header = read_header(data, path.name)
    check_size(header, path.name)
    if header.format == "HEIF" or path.suffix.lower() in HEIC_SUFFIXES:
        return _decode_heif(data, path.name)
    flag = jpeg_reduction(header.width, header.height)[1] if header.format == "JPEG" else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)  # applies EXIF orientation
    del data
    if image is None or image.size == 0:
        raise ImageReadError(f"{path.name}: not a readable image (corrupt or unsupported format)")
    return shrink(image)


def _decode_heif(data: bytes, name: str) -> np.ndarray:
    if not _register_heif():
        raise ImageReadError(_NEEDS_HEIF.format(name=name))
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if max(im.size) > MAX_DECODED_SIDE:
                im.thumbnail((MAX_DECODED_SIDE, MAX_DECODED_SIDE), Image.Resampling.BOX)
            rgb = ImageOps.exif_transpose(im).convert("RGB")
    except Exception as exc:
        raise ImageReadError(f"{name}: not a readable HEIC image ({exc})") from None
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)


def is_image_file(path: Path) -> bool:
    """A visible regular file (after symlinks) with an image suffix; stat only, never opened."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
