"""Where frames come from: a camera, a video file or stream, or a folder of images.

A source spec is one string so it fits in the config and on the command line:
`camera:0` or `0` (OpenCV camera index), `/dev/video0`, `picamera2`,
`rtsp://...`/`http://...` (a stream), a video file, or a folder of images.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from device.camera.frames import Frame, FrameSource, SourceError
from device.camera.images import ImageReadError, is_image_file, read_image


class ImageFolderSource:
    """Each image in a folder is one frame, in name order; unreadable files are skipped,
    and a folder where no image can be read is one SourceError, not an empty run."""

    live = False

    def __init__(self, paths: list[Path], name: str) -> None:
        self.name = name
        self.paths = paths
        if not self.paths:
            raise SourceError(f"no images in {name}")
        self.skipped: list[str] = []

    @classmethod
    def of_folder(cls, folder: Path) -> ImageFolderSource:
        return cls(
            sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name), f"folder:{folder.name}"
        )

    def frames(self) -> Iterator[Frame]:
        delivered = 0
        for i, path in enumerate(self.paths):
            try:
                image = read_image(path)
            except ImageReadError as exc:
                self.skipped.append(str(exc))
                continue
            delivered += 1
            yield Frame(image, i, time.monotonic())
        if not delivered:
            raise SourceError(nothing_usable(self.name, self.skipped))

    def close(self) -> None:
        pass


def nothing_usable(name: str, problems: list[str]) -> str:
    """One line for a folder none of whose images could be read."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    first = f": {problems[0]}{more}" if problems else ""
    return f"no usable images in {name}, none of its {len(problems)} image files could be read{first}"


class VideoCaptureSource:
    """OpenCV VideoCapture: video files, USB/V4L2 cameras and network streams."""

    def __init__(
        self, target: str | int, name: str, live: bool, width: int | None = None, height: int | None = None
    ) -> None:
        self.name = name
        self.live = live
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(_open_failure(name))
        if live and width and height:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self._cap.read()
            if not ok or image is None:
                return
            yield Frame(image, index, time.monotonic())
            index += 1

    def close(self) -> None:
        self._cap.release()


def _open_failure(name: str) -> str:
    if name.startswith("camera:") or name.startswith("/dev/video"):
        return f"no camera at {name}: connect one, or give a video file or image folder with --source"
    return f"cannot open {name}: not a readable video or stream"


def open_source(spec: str, width: int | None = None, height: int | None = None) -> FrameSource:
    spec = spec.strip()
    if spec.isdigit() or spec.startswith("camera:"):
        index = int(spec.split(":", 1)[-1])
        return VideoCaptureSource(index, f"camera:{index}", live=True, width=width, height=height)
    if spec == "picamera2":
        from device.camera.picamera import PiCameraSource  # only on a Pi with python3-picamera2

        return PiCameraSource(width or 640, height or 480)
    if "://" in spec:
        return VideoCaptureSource(spec, f"stream:{spec.split('://', 1)[0]}", live=True)
    path = Path(spec).expanduser()
    if spec.startswith("/dev/"):
        if not path.exists():
            raise SourceError(_open_failure(spec))
        return VideoCaptureSource(spec, spec, live=True, width=width, height=height)
    if path.is_dir():
        return ImageFolderSource.of_folder(path)
    if path.is_file():
        if is_image_file(path):
            return ImageFolderSource([path], f"image:{path.name}")
        return VideoCaptureSource(str(path), f"video:{path.name}", live=False)
    raise SourceError(
        f"source not found: {spec} (a camera index, /dev/videoN, picamera2, a URL, a video file or an image folder)"
    )
