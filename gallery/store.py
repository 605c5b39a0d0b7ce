"""The gallery database: who is enrolled and their face templates.

Templates are biometric data, bound to the exact model file that computed
them (its sha256): embeddings from another model are meaningless, so opening a
gallery with a different model is refused with a way out (re-enrol).

A new gallery is always built completely in a temporary file beside the live
one and swapped in with one atomic rename, so a failure or power cut at any
moment leaves either the old gallery or the new one in force, never a mix.
`secure_delete` makes SQLite overwrite deleted content, and the rollback
journal (not WAL) keeps no stale copies after a commit.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sqlite_utils

SCHEMA_VERSION = 1


class GalleryError(RuntimeError):
    """A one-line, user-facing problem with the gallery database."""


class GalleryModelMismatch(GalleryError):
    pass


@dataclass(frozen=True)
class ModelBinding:
    name: str
    sha256: str
    embedding_size: int


@dataclass(frozen=True)
class Template:
    person: str
    photo: str  # file name the template came from (not the photo itself)
    embedding: np.ndarray


@dataclass(frozen=True)
class PersonSummary:
    name: str
    photos: int
    enrolled_at: str
    employee_id: str | None


def _connect(path: Path) -> sqlite_utils.Database:
    conn = sqlite3.connect(str(path), timeout=10)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA journal_mode = DELETE")
    db.execute("PRAGMA synchronous = FULL")
    return db


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_folder(path: Path) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise GalleryError(f"gallery folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise GalleryError(f"gallery folder is not writable: {folder}")


class GalleryStore:
    """Read access to a gallery file, plus the atomic writers below."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def _open(self) -> sqlite_utils.Database:
        if not self.path.is_file():
            raise GalleryError(f"no gallery at {self.path}: enrol people first with `clockface enroll DIR`")
        try:
            db = _connect(self.path)
            db.execute("SELECT count(*) FROM meta").fetchone()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"gallery {self.path} is unreadable ({exc}); re-enrol with `clockface enroll DIR`") from None
        return db

    def binding(self) -> ModelBinding:
        db = self._open()
        try:
            meta = {row["key"]: row["value"] for row in db["meta"].rows}
        finally:
            db.close()
        return ModelBinding(meta["model_name"], meta["model_sha256"], int(meta["embedding_size"]))

    def check_model(self, model: ModelBinding) -> None:
        bound = self.binding()
        if bound.sha256 != model.sha256:
            raise GalleryModelMismatch(
                f"the gallery was enrolled with model {bound.name} (sha256 {bound.sha256[:12]}), "
                f"but the configured model is {model.name} (sha256 {model.sha256[:12]}): "
                "re-enrol with `clockface enroll DIR` or configure the gallery's model"
            )

    def templates(self, model: ModelBinding) -> list[Template]:
        """All templates, after checking they were made by `model`."""
        self.check_model(model)
        db = self._open()
        try:
            rows = db.execute(
                "SELECT people.name, templates.photo, templates.embedding FROM templates "
                "JOIN people ON people.id = templates.person_id ORDER BY people.name, templates.id"
            ).fetchall()
        finally:
            db.close()
        out = []
        for name, photo, blob in rows:
            vec = np.frombuffer(blob, dtype="<f4")
            if vec.size != model.embedding_size:
                raise GalleryError(f"gallery template for {name} has {vec.size} values, expected {model.embedding_size}")
            out.append(Template(name, photo, vec.copy()))
        return out

    def people(self) -> list[PersonSummary]:
        db = self._open()
        try:
            rows = db.execute(
                "SELECT people.name, count(templates.id), people.enrolled_at, people.employee_id FROM people "
                "LEFT JOIN templates ON templates.person_id = people.id GROUP BY people.id ORDER BY people.name"
            ).fetchall()
        finally:
            db.close()
        return [PersonSummary(*row) for row in rows]


def _create_schema(db: sqlite_utils.Database, model: ModelBinding) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["people"].create({"id": int, "name": str, "enrolled_at": str, "employee_id": str}, pk="id", not_null={"name"})
    db["people"].create_index(["name"], unique=True)
    db["templates"].create(
        {"id": int, "person_id": int, "photo": str, "embedding": bytes, "created_at": str},
        pk="id",
        foreign_keys=[("person_id", "people", "id")],
    )
    db["meta"].insert_all(
        [
            {"key": "schema_version", "value": str(SCHEMA_VERSION)},
            {"key": "model_name", "value": model.name},
            {"key": "model_sha256", "value": model.sha256},
            {"key": "embedding_size", "value": str(model.embedding_size)},
            {"key": "created_at", "value": _now()},
        ]
    )


def write_gallery(path: Path, model: ModelBinding, templates: list[Template], keep: list[Template] | None = None) -> None:
    """Replace the gallery at `path` with exactly these templates, atomically.

    `keep` carries templates of people from the previous gallery (add mode).
    """
    path = Path(path)
    _check_folder(path)
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    try:
        db = _connect(tmp)
        try:
            with db.conn:
                _create_schema(db, model)
                ids: dict[str, int] = {}
                now = _now()
                for t in list(keep or []) + list(templates):
                    if t.embedding.size != model.embedding_size:
                        raise GalleryError(f"template for {t.person} has {t.embedding.size} values, expected {model.embedding_size}")
                    if t.person not in ids:
                        ids[t.person] = db["people"].insert({"name": t.person, "enrolled_at": now}).last_pk
                    db["templates"].insert(
                        {
                            "person_id": ids[t.person],
                            "photo": t.photo,
                            "embedding": np.asarray(t.embedding, dtype="<f4").tobytes(),
                            "created_at": now,
                        }
                    )
        finally:
            db.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except sqlite3.OperationalError as exc:
        tmp.unlink(missing_ok=True)
        raise GalleryError(f"cannot write gallery {path}: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
