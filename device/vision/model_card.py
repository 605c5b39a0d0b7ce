"""The model sidecar (`<name>.json` beside `<name>.tflite`): the contract between
converter and device.

Everything the device needs to know about a model lives here, so nothing
model-specific is hard-coded in device/: chip geometry (the 5-point landmark template) for alignment, colour
order and normalisation for the input tensor, the distance metric and the
default threshold for matching, and hashes that bind a gallery to the exact
model file that made its embeddings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

SIDECAR_FORMAT = 1
METRICS = ("cosine", "euclidean")
COLOUR_ORDERS = ("RGB", "BGR")
QUANTIZE_SUFFIXES = ("float16", "dynamic", "int8")
REQUIRED_FIELDS = (
    "name",
    "embedding_size",
    "colour_order",
    "normalisation",
    "chip",
    "metric",
    "threshold",
    "threshold_calibrated",
    "source",
    "source_sha256",
    "model_sha256",
    "converter_version",
)


class ModelCardError(ValueError):
    """A sidecar that is missing, unreadable or does not describe its model file."""


@dataclass(frozen=True)
class ChipGeometry:
    """Where the model expects a face's 5 landmarks in its input chip.

    Alignment maps the face's five landmarks (eyes, nose, mouth corners, in
    device.vision.align.LANDMARK_NAMES order; "left" is the image's left) onto
    `landmarks` by one least-squares similarity transform, so the same code
    serves every model. Points are (x, y) fractions of `size`. `fit` says how
    the template was obtained (e.g. calibrated on dlib's own chips), because a
    template is a measurement and must name its origin.
    """

    size: tuple[int, int]  # (width, height) in pixels
    landmarks: tuple[tuple[float, float], ...]  # 5 points, (x, y) fractions of size
    fit: str = ""


LANDMARK_COUNT = 5


@dataclass(frozen=True)
class Normalisation:
    """Input tensor = (pixel - mean) * scale, per channel in `colour_order`."""

    mean: tuple[float, float, float]
    scale: float = 1.0


@dataclass(frozen=True)
class ModelCard:
    name: str
    embedding_size: int
    colour_order: Literal["RGB", "BGR"]
    normalisation: Normalisation
    chip: ChipGeometry
    metric: Literal["cosine", "euclidean"]
    threshold: float
    threshold_calibrated: bool
    source: str
    source_sha256: str
    model_sha256: str
    converter_version: str
    input_dtype: str = "float32"
    quantization: str = "none"
    # Fidelity measured against the source network at export time, and the
    # limits the converter refused to go beyond.
    check: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    format: int = SIDECAR_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> ModelCard:
        """Build a card from parsed JSON, refusing (ModelCardError, one line) anything malformed.

        Why check each field: a wrong value here would surface much later as a
        NumPy traceback or, worse, as silently wrong matches.
        """
        problem = sidecar_problem(data)
        if problem:
            raise ModelCardError(problem)
        try:
            chip = data["chip"]
            return cls(
                **{
                    **data,
                    "normalisation": Normalisation(
                        mean=tuple(data["normalisation"]["mean"]),
                        scale=float(data["normalisation"]["scale"]),
                    ),
                    "chip": ChipGeometry(
                        size=tuple(chip["size"]),
                        landmarks=tuple((float(x), float(y)) for x, y in chip["landmarks"]),
                        fit=str(chip.get("fit", "")),
                    ),
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelCardError(f"sidecar has a malformed field: {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_pair(value: Any, kind: type | tuple[type, ...]) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
    )


def sidecar_problem(data: Any) -> str | None:
    """What is wrong with a parsed sidecar, as a phrase, or None when it is well formed (pure)."""
    if not isinstance(data, dict):
        return f"it holds a JSON {type(data).__name__ if data is not None else 'null'}, not an object"
    if data.get("format") != SIDECAR_FORMAT:
        return f"unsupported sidecar format {data.get('format')!r} (expected {SIDECAR_FORMAT})"
    missing = [key for key in REQUIRED_FIELDS if key not in data]
    if missing:
        return f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    unknown = sorted(set(data) - {f.name for f in fields(ModelCard)})
    if unknown:
        return f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
    size = data["embedding_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        return f"embedding_size must be a positive integer, got {size!r}"
    if data["metric"] not in METRICS:
        return f"unknown metric {data['metric']!r} (expected {' or '.join(METRICS)})"
    if data["colour_order"] not in COLOUR_ORDERS:
        return f"unknown colour_order {data['colour_order']!r} (expected {' or '.join(COLOUR_ORDERS)})"
    if not _is_number(data["threshold"]) or data["threshold"] <= 0:
        return f"threshold must be a positive number, got {data['threshold']!r}"
    norm = data["normalisation"]
    if not (
        isinstance(norm, dict)
        and isinstance(norm.get("mean"), list)
        and len(norm["mean"]) == 3
        and all(_is_number(m) for m in norm["mean"])
        and _is_number(norm.get("scale"))
    ):
        return 'normalisation must be {"mean": [3 numbers], "scale": number}'
    chip = data["chip"]
    if not isinstance(chip, dict):
        return "chip must be an object"
    if not (_is_pair(chip.get("size"), int) and min(chip["size"]) > 0):
        return f"chip.size must be [width, height] in pixels, got {chip.get('size')!r}"
    if "landmarks" not in chip:
        # Sidecars from before landmark alignment held two eye points. Guessing a
        # 5-point template from them would be a second, unmeasured geometry.
        return "chip.landmarks is missing (the sidecar predates 5-point alignment)"
    points = chip["landmarks"]
    if not (
        isinstance(points, list | tuple)
        and len(points) == LANDMARK_COUNT
        and all(_is_pair(p, (int, float)) for p in points)
    ):
        return f"chip.landmarks must be {LANDMARK_COUNT} [x, y] fractions, got {points!r}"
    if not isinstance(chip.get("fit", ""), str):
        return f"chip.fit must be a string, got {chip['fit']!r}"
    return None


def convert_command(model_path: Path) -> str:
    """The command that writes this model and its sidecar again (`name-int8` -> `name --quantize int8`)."""
    base, _, suffix = model_path.stem.rpartition("-")
    quantize = f" --quantize {suffix}" if base and suffix in QUANTIZE_SUFFIXES else ""
    name = base if quantize else model_path.stem
    return f"clockface convert {name}{quantize} --output {model_path.parent}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def load_card(model_path: Path, verify_hash: bool = True) -> ModelCard:
    """Read the sidecar of `model_path` and check it describes that very file.

    A hash mismatch means the .tflite was replaced without its sidecar (or the
    reverse); running on it would silently mismatch the gallery, so refuse.
    """
    side = sidecar_path(model_path)
    if not model_path.is_file():
        raise ModelCardError(f"model file not found: {model_path}")
    if not side.is_file():
        raise ModelCardError(f"model sidecar not found: {side} (convert the model again with `clockface convert`)")
    redo = f"re-run `{convert_command(model_path)}` on a workstation and copy both files here"
    try:
        card = ModelCard.from_dict(json.loads(side.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"model sidecar {side} is not valid JSON ({exc}): {redo}") from None
    except ModelCardError as exc:
        raise ModelCardError(f"model sidecar {side} is not usable: {exc}; {redo}") from None
    if verify_hash and sha256_file(model_path) != card.model_sha256:
        raise ModelCardError(
            f"{model_path.name} does not match the sha256 in {side.name}: the file was changed or truncated; {redo}"
        )
    return card
