"""MTCNN face detection with 5 landmarks on LiteRT: the `mtcnn` package's pipeline, without TensorFlow.

`clockface convert mtcnn` (workstation) writes `mtcnn-{pnet,rnet,onet}.tflite`
and one sidecar `mtcnn.json` into the models folder. This module runs the
three networks the way mtcnn 1.0.0's `MTCNN.detect_faces` does, step for step,
so that its boxes and landmarks match the package's (tests/device/test_mtcnn_fidelity.py
measures that on every photo of ../shared/faces):

1. image pyramid (scales 12/min_face_size * 0.709^k, area resampling as tf.image.resize "area"),
2. P-Net on each scale, proposals above 0.6, NMS 0.5 per scale, NMS 0.7 over all scales, squared,
3. R-Net on 24x24 crops (tf.image.crop_and_resize's bilinear sampling), above 0.7, box regression,
   NMS 0.7, squared,
4. O-Net on 48x48 crops, above 0.8, box regression and 5 landmarks, NMS 0.7 on the smaller box's area.

The package's NMS is not the textbook greedy one: a box is dropped when any
higher-scoring box overlaps it beyond the threshold, even one that was itself
dropped. That is kept, because the goal is the package's faces, not a better detector.

Why one module over 300 lines: the sidecar contract, the pure pipeline maths and the
three interpreters are one detector; split up, each part would be checked only through the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from device.vision.embedder import _interpreter_class, filtered_native_stderr
from device.vision.model_card import sha256_file

SIDECAR = "mtcnn.json"
SIDECAR_FORMAT = 1
NETWORKS = ("pnet", "rnet", "onet")
NETWORK_FILES = {name: f"mtcnn-{name}.tflite" for name in NETWORKS}
# What each network outputs, told apart by channel count (TFLite does not keep Keras' output order).
OUTPUT_CHANNELS: dict[str, dict[str, int]] = {
    "pnet": {"box_regression": 4, "face_probability": 2},
    "rnet": {"box_regression": 4, "face_probability": 2},
    "onet": {"box_regression": 4, "landmarks": 10, "face_probability": 2},
}
CROP_SIZES = {"rnet": 24, "onet": 48}
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # "left" = image left


class MtcnnError(RuntimeError):
    """The MTCNN model files are missing, do not match their sidecar, or cannot be run (one line)."""


# --------------------------------------------------------------------------- the sidecar contract


@dataclass(frozen=True)
class MtcnnSettings:
    """The `mtcnn` package's documented `detect_faces` defaults (what the fidelity test compares against)."""

    min_face_size: float = 20
    min_size: int = 12  # P-Net's window: the pyramid's smallest image side
    scale_factor: float = 0.709
    threshold_pnet: float = 0.6
    nms_pnet1: float = 0.5
    nms_pnet2: float = 0.7
    threshold_rnet: float = 0.7
    nms_rnet: float = 0.7
    threshold_onet: float = 0.8
    nms_onet: float = 0.7


@dataclass(frozen=True)
class NetworkEntry:
    file: str
    sha256: str
    input_shape: list[int]  # -1 where the device resizes the input (P-Net H, W; every batch)
    outputs: dict[str, int]  # output name -> channels
    source: str = ""
    source_sha256: str = ""
    check: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MtcnnCard:
    """`mtcnn.json`: what the device must know to feed the three networks and read their outputs."""

    networks: dict[str, NetworkEntry]
    colour_order: Literal["RGB", "BGR"] = "RGB"
    mean: float = 127.5
    scale: float = 1 / 128  # input = (pixel - mean) * scale
    layout: str = "NHWC"
    defaults: MtcnnSettings = field(default_factory=MtcnnSettings)
    source: str = ""
    converter_version: str = ""
    notes: str = ""
    format: int = SIDECAR_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MtcnnCard:
        if data.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"sidecar format {data.get('format')!r}, this device reads format {SIDECAR_FORMAT}")
        nets = data["networks"]
        missing = [n for n in NETWORKS if n not in nets]
        if missing:
            raise ValueError(f"no entry for {', '.join(missing)}")
        return cls(
            networks={n: NetworkEntry(**nets[n]) for n in NETWORKS},
            colour_order=data["colour_order"],
            mean=float(data["mean"]),
            scale=float(data["scale"]),
            layout=data.get("layout", "NHWC"),
            defaults=MtcnnSettings(**data.get("defaults", {})),
            source=data.get("source", ""),
            converter_version=data.get("converter_version", ""),
            notes=data.get("notes", ""),
        )


def _redo(models_dir: Path) -> str:
    return f"run `clockface convert mtcnn --output {models_dir}` on a workstation and copy all four files here"


def load_mtcnn_card(models_dir: Path) -> MtcnnCard:
    """Read `mtcnn.json` and check every network file against its sha256; MtcnnError otherwise."""
    models_dir = Path(models_dir)
    side = models_dir / SIDECAR
    if not side.is_file():
        raise MtcnnError(f"MTCNN models not found: no {side}; {_redo(models_dir)}")
    try:
        card = MtcnnCard.from_dict(json.loads(side.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise MtcnnError(f"{side} is not a valid MTCNN sidecar ({exc}); {_redo(models_dir)}") from None
    for name, entry in card.networks.items():
        path = models_dir / entry.file
        if not path.is_file():
            raise MtcnnError(f"MTCNN {name} model not found: {path}; {_redo(models_dir)}")
        if sha256_file(path) != entry.sha256:
            raise MtcnnError(f"{path} does not match the sha256 in {side}; {_redo(models_dir)}")
    return card


# --------------------------------------------------------------------------- pure pipeline maths
# Boxes are float arrays (n, 5): x1, y1, x2, y2, score, in input-image pixels.


def pyramid_scales(width: int, height: int, settings: MtcnnSettings) -> np.ndarray:
    """mtcnn.utils.images.build_scale_pyramid: 12/min_face_size * factor^k, k = 0 .. count-1."""
    min_dim = min(width, height)
    count = round(-((np.log(min_dim / settings.min_size) / np.log(settings.scale_factor)) + 1))
    return (settings.min_size / settings.min_face_size) * settings.scale_factor ** np.arange(max(count, 0))


def pnet_proposals(regression: np.ndarray, face_prob: np.ndarray, threshold: float, scale: float) -> np.ndarray:
    """P-Net map (h, w, 4), (h, w) -> boxes in image pixels, best first (generate_bounding_box + upscale)."""
    ys, xs = np.nonzero(face_prob > threshold)
    reg = regression[ys, xs].astype(np.float64)
    left, top = xs * 2.0 + 1, ys * 2.0 + 1  # stride 2; the package's cell spans +1 .. +12, so 11 wide
    right, bottom = xs * 2.0 + 12, ys * 2.0 + 12
    boxes = np.stack(
        [
            left + reg[:, 0] * 11,
            top + reg[:, 1] * 11,
            right + reg[:, 2] * 11,
            bottom + reg[:, 3] * 11,
            face_prob[ys, xs].astype(np.float64),
        ],
        axis=1,
    )
    boxes[:, :4] /= scale
    return sort_by_score(boxes)


def sort_by_score(boxes: np.ndarray, column: int = 4) -> np.ndarray:
    return boxes[np.argsort(boxes[:, column])[::-1]]


def overlap_matrix(boxes: np.ndarray, method: Literal["union", "min"]) -> np.ndarray:
    """Pairwise intersection over union (or over the smaller area), areas without +1 as in the package."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = (x2 - x1) * (y2 - y1)
    iw = np.maximum(0, np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]))
    ih = np.maximum(0, np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]))
    inter = iw * ih
    denom = area[:, None] + area[None] - inter if method == "union" else np.minimum(area[:, None], area[None])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / denom


def nms_keep(boxes: np.ndarray, threshold: float, method: Literal["union", "min"] = "union") -> np.ndarray:
    """Indices kept by the package's NMS on boxes already in score order (see the module docstring)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.intp)
    over = np.triu(overlap_matrix(boxes, method) > threshold, k=1)
    return np.nonzero(~over.any(axis=0))[0]


def nms(boxes: np.ndarray, threshold: float, method: Literal["union", "min"] = "union", sort: bool = True):
    boxes = sort_by_score(boxes) if sort else boxes
    return boxes[nms_keep(boxes, threshold, method)]


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow the shorter side to the longer one about the centre (resize_to_square)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply R-/O-Net box offsets, scaled by the box's size + 1 (adjust_bboxes)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, :4] += offsets * np.stack([w, h, w, h], axis=1)
    return out


def landmarks_in_image(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """O-Net's (n, 10) x1..x5, y1..y5 in box fractions -> (n, 5, 2) image pixels (adjust_landmarks)."""
    w = boxes[:, 2:3] - boxes[:, 0:1] + 1
    h = boxes[:, 3:4] - boxes[:, 1:2] + 1
    xs = w * points[:, 0:5] + boxes[:, 0:1] - 1
    ys = h * points[:, 5:10] + boxes[:, 1:2] - 1
    return np.stack([xs, ys], axis=-1).astype(np.float32)


def _area_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """Input indices (out, K) and weights (out, K) of tf.image.resize's "area" method along one axis.

    Computed in float32 as TensorFlow's resize_area kernel does (positions y * scale in float32):
    that rounding moves pixels by up to 1e-4, enough to tip a P-Net score sitting at its threshold
    and, through the package's NMS, which face survives. OpenCV's INTER_AREA differs by that much.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    pos = np.arange(out_size, dtype=np.float32)
    lo, hi = pos * scale, (pos + 1) * scale
    start, end = np.floor(lo).astype(np.intp), np.ceil(hi).astype(np.intp)
    index = start[:, None] + np.arange(int((end - start).max()))[None]
    cell = index.astype(np.float32)
    lo, hi = lo[:, None], hi[:, None]
    weight = np.where(
        cell < lo,
        np.where(cell + 1 > hi, scale, cell + 1 - lo),
        np.where(cell + 1 > hi, hi - cell, np.float32(1)),
    ).astype(np.float32)
    weight[index >= end[:, None]] = 0
    return np.clip(index, 0, in_size - 1), weight, scale


def resize_area(image: np.ndarray, width: int, height: int, columns: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) float32 -> (height, width, C) as tf.image.resize(method="area") (the package's pyramid).

    `columns` is `image` transposed to (W, H, C) and contiguous, when the caller already has it
    (the pyramid resizes one image many times; the transpose is most of a resize's cost).
    """
    cols, wx, sx = _area_taps(image.shape[1], width)
    rows, wy, sy = _area_taps(image.shape[0], height)
    # Along x first, then y, each tap in order with float32 sums, as the kernel adds them (so the
    # result is bit-exact); each pass gathers whole rows of a transposed copy, which is a memcpy.
    if columns is None:
        columns = np.ascontiguousarray(image.transpose(1, 0, 2))
    across = np.zeros((width, image.shape[0], image.shape[2]), np.float32)
    for k in range(cols.shape[1]):
        across += columns[cols[:, k]] * wx[:, k, None, None]
    rows_first = np.ascontiguousarray(across.transpose(1, 0, 2))
    down = np.zeros((height, width, image.shape[2]), np.float32)
    for k in range(rows.shape[1]):
        down += rows_first[rows[:, k]] * wy[:, k, None, None]
    return down * np.float32(1.0 / float(sy * sx))


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: int, fill: float = 0.0) -> np.ndarray:
    """tf.image.crop_and_resize of (H, W, C) over boxes x1, y1, x2, y2 (pixels), bilinear, `fill` outside.

    The package divides pixel boxes by H and W, and TF scales those fractions by
    H - 1 and W - 1: the same arithmetic is done here, so crops agree to float rounding.
    """
    height, width = image.shape[:2]
    steps = np.arange(size, dtype=np.float64) / (size - 1)

    def axis(lo: np.ndarray, hi: np.ndarray, extent: int) -> tuple[np.ndarray, ...]:
        a, b = lo / extent * (extent - 1), hi / extent * (extent - 1)
        pos = a[:, None] + steps[None] * (b - a)[:, None]  # (n, size)
        inside = (pos >= 0) & (pos <= extent - 1)
        low = np.clip(np.floor(pos), 0, extent - 1).astype(np.intp)
        high = np.clip(np.ceil(pos), 0, extent - 1).astype(np.intp)
        return low, high, (pos - np.floor(pos)).astype(np.float32), inside

    top, bottom, wy, in_y = axis(boxes[:, 1], boxes[:, 3], height)
    left, right, wx, in_x = axis(boxes[:, 0], boxes[:, 2], width)

    def gather(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return image[rows[:, :, None], cols[:, None, :]].astype(np.float32)  # (n, size, size, C)

    wx4 = wx[:, None, :, None]
    upper = gather(top, left) + (gather(top, right) - gather(top, left)) * wx4
    lower = gather(bottom, left) + (gather(bottom, right) - gather(bottom, left)) * wx4
    out = upper + (lower - upper) * wy[:, :, None, None]
    mask = in_y[:, :, None] & in_x[:, None, :]
    return np.where(mask[..., None], out, np.float32(fill)).astype(np.float32)


# --------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class MtcnnFace:
    """One face: box (x, y, w, h) in image pixels, O-Net's confidence, landmarks (5, 2) in LANDMARK_NAMES order."""

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: np.ndarray


class _Network:
    """One LiteRT interpreter whose input is resized when the shape changes (P-Net per scale, batches).

    `model` is a file, or the bytes the converter has just exported (it checks them with this same class).
    """

    def __init__(self, model: Path | bytes, outputs: dict[str, int], threads: int = 2) -> None:
        Interpreter = _interpreter_class()
        label = "exported bytes" if isinstance(model, bytes) else str(model)
        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        try:
            with filtered_native_stderr():
                self._interp = Interpreter(**source, num_threads=threads)
                detail = self._interp.get_input_details()[0]
                self._input = detail["index"]
                # A dynamic H x W is stored as 1 x 1, on which P-Net's 3x3 convolutions cannot even be
                # planned: allocate for its smallest real input (12 x 12) instead.
                first = [1 if d < 0 or i == 0 else int(d) for i, d in enumerate(detail["shape_signature"])]
                if any(d < 0 for d in detail["shape_signature"][1:3]):
                    first[1:3] = [12, 12]
                self._interp.resize_tensor_input(self._input, first, strict=False)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise MtcnnError(f"cannot load TFLite model {label}: {exc}") from None
        self._shape: tuple[int, ...] = tuple(first)
        by_channels = {int(d["shape"][-1]): d["index"] for d in self._interp.get_output_details()}
        if sorted(by_channels) != sorted(outputs.values()):
            raise MtcnnError(f"{label} outputs {sorted(by_channels)} channels, its sidecar says {outputs}")
        self._outputs = {name: by_channels[channels] for name, channels in outputs.items()}

    @property
    def input_signature(self) -> list[int]:
        return [int(d) for d in self._interp.get_input_details()[0]["shape_signature"]]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if x.shape != self._shape:
            self._interp.resize_tensor_input(self._input, list(x.shape), strict=False)
            self._interp.allocate_tensors()
            self._shape = x.shape
        self._interp.set_tensor(self._input, np.ascontiguousarray(x, np.float32))
        self._interp.invoke()
        return {name: self._interp.get_tensor(index) for name, index in self._outputs.items()}


class MtcnnDetector:
    """P-, R- and O-Net on LiteRT. Build once per process (`from_models_dir`); `detect` is called per image."""

    def __init__(self, models_dir: Path, card: MtcnnCard, threads: int = 2) -> None:
        self.models_dir = Path(models_dir)
        self.card = card
        self.settings = card.defaults
        self._nets = {
            name: _Network(self.models_dir / entry.file, entry.outputs, threads)
            for name, entry in card.networks.items()
        }

    @classmethod
    def from_models_dir(cls, models_dir: Path | str, threads: int = 2) -> MtcnnDetector:
        return cls(Path(models_dir), load_mtcnn_card(Path(models_dir)), threads)

    def _normalise(self, image_bgr: np.ndarray) -> np.ndarray:
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"MTCNN takes a colour image (H, W, 3), got shape {image_bgr.shape}")
        pixels = image_bgr[:, :, ::-1] if self.card.colour_order == "RGB" else image_bgr
        return ((pixels.astype(np.float32) - np.float32(self.card.mean)) * np.float32(self.card.scale)).copy()

    def _proposals(self, image: np.ndarray) -> np.ndarray:
        s = self.settings
        height, width = image.shape[:2]
        found = []
        columns = np.ascontiguousarray(image.transpose(1, 0, 2))
        for scale in pyramid_scales(width, height, s):
            h, w = int(height * scale), int(width * scale)
            if min(h, w) < s.min_size:  # P-Net has no output below its 12-px window
                continue
            scaled = resize_area(image, w, h, columns)
            out = self._nets["pnet"].run(scaled[None])
            boxes = pnet_proposals(
                out["box_regression"][0], out["face_probability"][0, :, :, 1], s.threshold_pnet, float(scale)
            )
            found.append(nms(boxes, s.nms_pnet1, sort=False))
        if not found:
            return np.zeros((0, 5))
        return square(nms(np.concatenate(found), s.nms_pnet2))

    def _refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        s = self.settings
        if len(boxes) == 0:
            return boxes
        out = self._nets["rnet"].run(crop_and_resize(image, boxes, CROP_SIZES["rnet"]))
        boxes = boxes.copy()
        boxes[:, 4] = out["face_probability"][:, 1]
        boxes = regress(boxes, out["box_regression"])
        boxes = boxes[boxes[:, 4] > s.threshold_rnet]
        return square(nms(boxes, s.nms_rnet))

    def _output(self, image: np.ndarray, boxes: np.ndarray, crops: np.ndarray | None = None):
        """O-Net: (boxes, landmarks (n, 5, 2)) for the given squared boxes, before thresholding."""
        crops = crop_and_resize(image, boxes, CROP_SIZES["onet"]) if crops is None else crops
        out = self._nets["onet"].run(crops)
        points = landmarks_in_image(boxes, out["landmarks"])
        boxes = boxes.copy()
        boxes[:, 4] = out["face_probability"][:, 1]
        return regress(boxes, out["box_regression"]), points

    def detect(self, image_bgr: np.ndarray) -> list[MtcnnFace]:
        """Every face, best first, as `mtcnn.MTCNN().detect_faces` finds them (boxes clipped to the image)."""
        s = self.settings
        image = self._normalise(image_bgr)
        boxes = self._refine(image, self._proposals(image))
        if len(boxes) == 0:
            return []
        boxes, points = self._output(image, boxes)
        keep = boxes[:, 4] > s.threshold_onet
        boxes, points = boxes[keep], points[keep]
        order = np.argsort(boxes[:, 4])[::-1]
        boxes, points = boxes[order], points[order]
        kept = nms_keep(boxes, s.nms_onet, "min")
        return faces_from_boxes(boxes[kept], points[kept], image.shape[1], image.shape[0])

    def landmarks(self, image_bgr: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The 5 landmarks (5, 2) O-Net places in a given (x, y, w, h) box, e.g. a Haar box in a frame.

        The box is squared about its centre first, as O-Net only ever sees squared boxes. Only the
        48 x 48 samples are normalised (bilinear sampling is linear, and the outside is filled with
        the mean, which normalises to detect()'s 0), so the cost does not grow with the frame: this
        runs once per new track in the frame loop.
        """
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0:
            raise ValueError(f"box must have a positive size, got {tuple(box)}")
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"MTCNN takes a colour image (H, W, 3), got shape {image_bgr.shape}")
        boxes = square(np.array([[x, y, x + w, y + h, 0.0]]))
        pixels = image_bgr[:, :, ::-1] if self.card.colour_order == "RGB" else image_bgr
        raw = crop_and_resize(pixels, boxes, CROP_SIZES["onet"], fill=self.card.mean)
        crops = (raw - np.float32(self.card.mean)) * np.float32(self.card.scale)
        _, points = self._output(pixels, boxes, crops)
        return points[0]


def faces_from_boxes(boxes: np.ndarray, points: np.ndarray, width: int, height: int) -> list[MtcnnFace]:
    """Clip boxes to the image as the package does (x to W - 1, y to H - 1; landmarks left as found)."""
    x1 = np.clip(boxes[:, 0], 0, width - 1)
    x2 = np.clip(boxes[:, 2], 0, width - 1)
    y1 = np.clip(boxes[:, 1], 0, height - 1)
    y2 = np.clip(boxes[:, 3], 0, height - 1)
    return [
        MtcnnFace(
            box=(float(x1[i]), float(y1[i]), float(x2[i] - x1[i]), float(y2[i] - y1[i])),
            confidence=float(boxes[i, 4]),
            landmarks=np.asarray(points[i], np.float32),
        )
        for i in range(len(boxes))
    ]
