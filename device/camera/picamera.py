"""Raspberry Pi camera modules through picamera2 (from apt: python3-picamera2).

Imported only when the source is `picamera2`, so machines without it never
need the library.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from device.camera.frames import Frame, SourceError


class PiCameraSource:
    live = True
    name = "picamera2"

    def __init__(self, width: int, height: int) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore
        except ImportError:
            raise SourceError(
                "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
                "and create the venv with --system-site-packages (setup.sh --device does both)"
            ) from None
        try:
            self._cam = Picamera2()
            # "RGB888" is stored B,G,R per pixel: the order OpenCV expects.
            config = self._cam.create_video_configuration(main={"size": (width, height), "format": "RGB888"})
            self._cam.configure(config)
            self._cam.start()
        except (RuntimeError, IndexError, OSError) as exc:
            raise SourceError(
                f"no Raspberry Pi camera available ({exc}); check the ribbon cable or use --source"
            ) from None

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            image = self._cam.capture_array("main")
            yield Frame(image[..., :3], index, time.monotonic())
            index += 1

    def close(self) -> None:
        try:
            self._cam.stop()
            self._cam.close()
        except Exception:
            pass
