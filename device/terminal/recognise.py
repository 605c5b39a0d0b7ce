"""One frame in, decisions out: detect every frame that moved (or while faces are
tracked), embed only undecided tracks.

Haar finds the faces in every frame; MTCNN's O-Net places a track's 5
landmarks only when that track needs an embedding (the "align" stage), so
its cost is paid per embedding, never per frame.

The loop around it (device/terminal/service.py) owns the source, signals and systemd;
this module owns the per-frame work and its timing, so the benchmark and the
service measure the same code.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from device.terminal.motion import MotionGate, MotionSettings
from device.terminal.tracking import Decision, Tracker, TrackerSettings
from device.vision.faces import FacePipeline
from device.vision.matcher import Matcher

STAGES = ("capture", "gate", "detect", "align", "embed", "match", "log")


@dataclass
class Stats:
    frames: int = 0
    faces: int = 0
    embeddings: int = 0
    decisions: int = 0
    still: int = 0  # frames the motion gate kept from the detector
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds


class Recogniser:
    def __init__(
        self,
        pipeline: FacePipeline,
        matcher: Matcher,
        tracking: TrackerSettings,
        min_face_px: int = 0,
        motion: MotionSettings | None = None,
    ) -> None:
        if pipeline.embedder is None:
            raise ValueError("the recogniser needs a pipeline with an embedder")
        self.pipeline = pipeline
        self.embedder = pipeline.embedder  # checked once here, not on every face
        self.matcher = matcher
        self.tracker = Tracker(tracking)
        self.min_face_px = min_face_px
        self.motion = MotionGate(motion or MotionSettings(enabled=False))
        self.stats = Stats()

    def process(self, image: np.ndarray, frame_index: int) -> list[Decision]:
        stats = self.stats
        stats.frames += 1
        t0 = time.perf_counter()
        moving = self.motion.is_open(image, tracking=bool(self.tracker.tracks))
        t1 = time.perf_counter()
        stats.add("gate", t1 - t0)
        if not moving:
            stats.still += 1
            return []
        boxes = self.pipeline.detect(image, still=False)
        stats.add("detect", time.perf_counter() - t1)
        stats.faces += len(boxes)
        decisions = []
        for track, box in self.tracker.update(boxes, frame_index):
            if not track.needs_embedding or box.w < self.min_face_px:
                continue
            a0 = time.perf_counter()
            landmarks = self.pipeline.landmarks(image, box)
            chip = self.pipeline.aligner.chip(image, landmarks)
            a1 = time.perf_counter()
            embedding = self.embedder.embed(chip)
            a2 = time.perf_counter()
            match = self.matcher.match(embedding)
            a3 = time.perf_counter()
            stats.add("align", a1 - a0)
            stats.add("embed", a2 - a1)
            stats.add("match", a3 - a2)
            stats.embeddings += 1
            decision = self.tracker.add_match(track, match)
            if decision is not None:
                stats.decisions += 1
                decisions.append(decision)
        return decisions
