"""The model sidecar (`<name>.json` beside `<name>.tflite`): the contract between
converter and device.

Everything the device needs to know about a model lives here, so nothing
model-specific is hard-coded in device/: chip geometry for alignment, colour
order and normalisation for the input tensor, the distance metric and the
default threshold for matching, and hashes that bind a gallery to the exact
model file that made its embeddings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

SIDECAR_FORMAT = 1


class ModelCardError(ValueError):
    """A sidecar that is missing, unreadable or does not describe its model file."""


@dataclass(frozen=True)
class ChipGeometry:
    """Where the model expects the eyes in its input chip.

    Alignment maps the two eye centres of a detected face onto these points
    (fractions of the chip width/height), so the same similarity transform
    serves every model. `box_eyes` says where, relative to a Haar frontal-face
    box of width w (origin at its top-left, unit w), those eye centres sit on
    average: the fallback when the eye cascade finds no pair, calibrated so
    that gallery and probe chips share one geometry either way.
    """

    size: tuple[int, int]  # (width, height) in pixels
    left_eye: tuple[float, float]  # eye on the image's left, as (x, y) fractions of size
    right_eye: tuple[float, float]
    box_left_eye: tuple[float, float] = (0.32, 0.41)
    box_right_eye: tuple[float, float] = (0.68, 0.41)


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
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        try:
            if data.get("format") != SIDECAR_FORMAT:
                raise ModelCardError(f"unsupported sidecar format {data.get('format')!r} (expected {SIDECAR_FORMAT})")
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
                        left_eye=tuple(chip["left_eye"]),
                        right_eye=tuple(chip["right_eye"]),
                        box_left_eye=tuple(chip["box_left_eye"]),
                        box_right_eye=tuple(chip["box_right_eye"]),
                    ),
                }
            )
        except (KeyError, TypeError) as exc:
            raise ModelCardError(f"sidecar is missing or has a malformed field: {exc}") from None


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
    try:
        card = ModelCard.from_dict(json.loads(side.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"model sidecar {side} is not valid JSON: {exc}") from None
    if verify_hash and sha256_file(model_path) != card.model_sha256:
        raise ModelCardError(
            f"{model_path.name} does not match the sha256 in {side.name}: the file was changed or truncated"
        )
    return card
