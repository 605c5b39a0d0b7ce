"""Calibrate the models' 5-point chip templates from MTCNN landmarks (workstation step).

    python -m converter.calibrate_template [--reference ../shared/reference/dlib] [--faces ../shared/faces]

Why measured, not typed in: alignment maps MTCNN's five landmarks onto the
model's template, so the template must say where *MTCNN* puts those points on
the chips the network was trained on, not where dlib's own 5-point predictor
(different points: eye corners, under the nose) puts its own.

- dlib-resnet-v1: MTCNN on dlib's own 150x150 chips (reference/dlib/chips, made
  by dlib.get_face_chip(size=150, padding=0.25)); the template is the median of
  each point over the chips. The residual reported is how far each chip's
  points lie from the template after the best similarity fit, in chip pixels:
  the alignment error the template itself leaves.
- keras-vggface: its networks were trained and evaluated on loose MTCNN boxes
  (the box enlarged 1.3x about its centre, the shorter side resized to 224,
  the centre 224x224 taken). The template is where MTCNN's landmarks land in
  that crop, median over the largest face of each photo in `--faces`; the
  similarity fit onto it then reproduces that crop up to a level head.

The printed tuples are what converter/models.py and converter/vggface.py carry.
MTCNN here is the `mtcnn` PyPI package (TensorFlow), which is why this lives in
converter/ and never runs on the device.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.vision.align import LANDMARK_NAMES, fit_similarity

# Detector: RGB uint8 image -> list of (box x, y, w, h; landmarks (5, 2)), any order.
Detect = Callable[[np.ndarray], list[tuple[tuple[float, float, float, float], np.ndarray]]]

VGGFACE_SIZE = 224
VGGFACE_LOOSE = 1.3  # VGGFace2's "loose" box: the detector box extended by 30 %
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class Calibration:
    """A template in chip pixels and what it leaves unexplained."""

    template: np.ndarray  # (5, 2) chip pixels
    size: tuple[int, int]
    samples: int
    mean_residual: float  # chip px, mean over samples and points
    max_residual: float  # chip px, worst point of any sample

    def fractions(self) -> tuple[tuple[float, float], ...]:
        w, h = self.size
        return tuple((round(float(x) / w, 4), round(float(y) / h, 4)) for x, y in self.template)


def calibrate(points: Sequence[np.ndarray], size: tuple[int, int]) -> Calibration:
    """Median template over per-sample (5, 2) point sets, and their residual after a similarity fit (pure)."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in points])
    template = np.median(stack, axis=0)
    residuals = np.concatenate([fit_similarity(p, template).residuals for p in stack])
    return Calibration(template, size, len(stack), float(residuals.mean()), float(residuals.max()))


def loose_crop_points(box: tuple[float, float, float, float], landmarks: np.ndarray, size: int) -> np.ndarray:
    """Where landmarks land in VGGFace's evaluation crop of a detector box (pure)."""
    x, y, w, h = box
    centre = np.array([x + w / 2, y + h / 2])
    scale = size / (VGGFACE_LOOSE * min(w, h))
    return (np.asarray(landmarks, dtype=np.float64) - centre) * scale + size / 2


def mtcnn_package_detector() -> Detect:
    from mtcnn import MTCNN  # workstation only: pulls in TensorFlow

    net = MTCNN()

    def detect(rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], np.ndarray]]:
        found = []
        for face in net.detect_faces(rgb):
            keypoints = np.array([face["keypoints"][name] for name in LANDMARK_NAMES], dtype=np.float64)
            x, y, w, h = (float(v) for v in face["box"])
            found.append(((x, y, w, h), keypoints))
        return found

    return detect


def _rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _largest(found: list[tuple[tuple[float, float, float, float], np.ndarray]]) -> np.ndarray | None:
    return max(found, key=lambda f: f[0][2] * f[0][3])[1] if found else None


def dlib_points(reference: Path, detect: Detect) -> tuple[list[np.ndarray], list[str]]:
    """MTCNN's 5 points on each of dlib's reference chips; names of chips with no face."""
    entries = json.loads((reference / "descriptors.json").read_text(encoding="utf-8"))
    points, missed = [], []
    for entry in entries:
        found = _largest(detect(_rgb(reference / entry["chip"])))
        if found is None:
            missed.append(entry["chip"])
        else:
            points.append(found)
    return points, missed


def vggface_points(faces: Path, detect: Detect) -> tuple[list[np.ndarray], list[str]]:
    """MTCNN's 5 points in the loose-box crop of the largest face of each person photo."""
    points, missed = [], []
    for folder in sorted(p for p in faces.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        for path in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
            found = detect(_rgb(path))
            if not found:
                missed.append(f"{folder.name}/{path.name}")
                continue
            box, landmarks = max(found, key=lambda f: f[0][2] * f[0][3])
            points.append(loose_crop_points(box, landmarks, VGGFACE_SIZE))
    return points, missed


def _report(name: str, cal: Calibration, missed: list[str]) -> None:
    print(f"{name}: {cal.samples} samples, {len(missed)} without a face {missed if missed else ''}".rstrip())
    for label, (x, y) in zip(LANDMARK_NAMES, cal.template, strict=True):
        print(f"  {label:<12} ({x:6.2f}, {y:6.2f}) px")
    print(f"  fractions: {cal.fractions()}")
    print(f"  residual after similarity fit: mean {cal.mean_residual:.2f} px, max {cal.max_residual:.2f} px")


def main(argv: Sequence[str] | None = None) -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=here.parent / "shared" / "reference" / "dlib")
    parser.add_argument("--faces", type=Path, default=here.parent / "shared" / "faces")
    parser.add_argument("--skip-vggface", action="store_true")
    args = parser.parse_args(argv)
    detect = mtcnn_package_detector()
    points, missed = dlib_points(args.reference, detect)
    _report("dlib-resnet-v1 (MTCNN median on dlib's 150x150 chips)", calibrate(points, (150, 150)), missed)
    if not args.skip_vggface:
        points, missed = vggface_points(args.faces, detect)
        size = (VGGFACE_SIZE, VGGFACE_SIZE)
        _report("keras-vggface (MTCNN median in the loose 1.3x box crop)", calibrate(points, size), missed)


if __name__ == "__main__":
    main()
