"""Reading photos from disk: one place that turns any bad file into one clear error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gallery.layout import IMAGE_SUFFIXES


class ImageReadError(ValueError):
    """The file is missing, empty, truncated, or not an image OpenCV can decode."""


def read_image(path: Path) -> np.ndarray:
    """Decode `path` to an 8-bit BGR array, honouring EXIF orientation.

    cv2.imdecode from bytes (not cv2.imread) so that non-ASCII file names work
    everywhere and a read failure can be told apart from a decode failure.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path.name}: cannot read file ({exc.strerror or exc})") from None
    if data.size == 0:
        raise ImageReadError(f"{path.name}: file is empty")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)  # applies EXIF orientation
    if image is None or image.size == 0:
        raise ImageReadError(f"{path.name}: not a readable image (corrupt or unsupported format)")
    return image


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
