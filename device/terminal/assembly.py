"""Assemble the recogniser's parts from the config: model, face pipeline, gallery.

Every command that touches faces (enroll, run, eval, demo) loads them here,
so they share one model, one chip geometry and one threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.config import Config
from device.vision.embedder import Embedder
from device.vision.faces import FacePipeline
from device.vision.matcher import Matcher, one_row_per_person
from device.vision.model_card import ModelCard, ModelCardError, load_card
from device.vision.mtcnn import MtcnnDetector, MtcnnError
from gallery.store import GalleryStore, ModelBinding, discard_stale_replacement


class SetupError(RuntimeError):
    """Something the user must fix before the terminal can run, as one line."""


@dataclass
class LoadedModel:
    path: Path
    card: ModelCard
    embedder: Embedder
    pipeline: FacePipeline
    threshold: float

    @property
    def binding(self) -> ModelBinding:
        return ModelBinding(self.card.name, self.card.model_sha256, self.card.embedding_size)


def load_mtcnn(models_dir: Path, threads: int) -> MtcnnDetector:
    """MTCNN (stills, and landmarks for frames) from the same models folder as the embedding model."""
    try:
        return MtcnnDetector.from_models_dir(models_dir, threads=threads)
    except (MtcnnError, ModelCardError) as exc:
        raise SetupError(str(exc)) from None


def load_model(config: Config, model_path: Path | None = None) -> LoadedModel:
    path = model_path or config.paths.model_path
    if not path.is_file():
        raise SetupError(
            f"model not found: {path} (run ./setup.sh, or `clockface convert {config.paths.model} --output {path.parent}` "
            "on a workstation and copy the .tflite and .json here)"
        )
    try:
        card = load_card(path)
    except ModelCardError as exc:
        raise SetupError(str(exc)) from None
    embedder = Embedder(path, card, threads=config.recognition.threads)
    pipeline = FacePipeline(card.chip, load_mtcnn(path.parent, config.recognition.threads), embedder, config.detection)
    threshold = config.recognition.threshold if config.recognition.threshold is not None else card.threshold
    return LoadedModel(path, card, embedder, pipeline, threshold)


def load_matcher(config: Config, model: LoadedModel) -> Matcher:
    """The gallery as a matcher, refused if it was enrolled with another model.

    No gallery yet is not an error: a new terminal runs (and tells systemd it is
    ready) before its first enrolment, and picks the gallery up when it appears.
    """
    discard_stale_replacement(config.paths.gallery)  # an enrolment interrupted by a power cut
    store = GalleryStore(config.paths.gallery)
    if not store.exists():
        return Matcher([], np.zeros((0, model.card.embedding_size), np.float32), model.card.metric, model.threshold)
    templates = store.templates(model.binding)
    if not templates:
        return Matcher([], np.zeros((0, model.card.embedding_size), np.float32), model.card.metric, model.threshold)
    # Several photos of one person are matched as their mean (device.vision.matcher.combine_templates).
    names, vectors = one_row_per_person([t.person for t in templates], np.stack([t.embedding for t in templates]))
    return Matcher(names, vectors, model.card.metric, model.threshold)
