"""What every frame source hands the recogniser, in its own module so that
sources (device/camera/sources.py) and the optional Pi camera (device/camera/picamera.py)
share it without importing each other."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class SourceError(RuntimeError):
    """A source that cannot be opened, as one line with what to do instead."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8
    index: int
    timestamp: float  # time.monotonic() when captured


class FrameSource(Protocol):
    name: str
    live: bool  # a camera/stream (drop stale frames) rather than a file (process every frame)

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
