"""The agent's one call into the centre's gallery: ``gallery.central.pull_gallery``, when it exists.

Kept apart from the loop so the wiring is in one obvious place: the agent calls
the function :func:`gallery_puller` returns once per interval, before the push.
``gallery.central`` is imported lazily, and a clockface without it simply does
not pull. The model binding (name, sha256, embedding size) is read from the
model's sidecar once, on the first pull: hashing the model file every interval
would cost a Pi a second of CPU for nothing.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.sync.agent import GalleryNews, Puller

if TYPE_CHECKING:
    import psycopg

    from gallery.store import ModelBinding


def gallery_puller(gallery_path: Path, model_path: Path) -> Puller | None:
    """A pull function for the agent, or None when this clockface has no gallery.central."""
    try:
        # By name: this clockface may predate gallery.central (then there is nothing to pull).
        pull_gallery = importlib.import_module("gallery.central").pull_gallery
    except (ImportError, AttributeError):
        return None
    binding: list[ModelBinding] = []

    def pull(conn: psycopg.Connection[Any]) -> GalleryNews:
        from device.errors import is_user_error, one_line
        from device.vision.model_card import ModelCardError, load_card
        from gallery.store import ModelBinding
        from logs.central.connect import CentralError

        if not binding:
            try:
                card = load_card(model_path)
            except ModelCardError as exc:
                return GalleryNews(version=None, refused=f"no usable model here, gallery not pulled: {exc}")
            binding.append(ModelBinding(card.name, card.model_sha256, card.embedding_size))
        try:
            outcome = pull_gallery(conn, gallery_path, binding[0])
        except Exception as exc:
            # A gallery that cannot be written (disk full, a locked file) must not stop the pushes;
            # a network or server error goes up, so the loop reconnects.
            if not is_user_error(exc) or isinstance(exc, CentralError):
                raise
            return GalleryNews(version=None, refused=f"gallery not applied: {one_line(exc)}")
        return GalleryNews(version=outcome.version, refused=outcome.refused)

    return pull
