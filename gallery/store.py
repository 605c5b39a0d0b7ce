"""The gallery database: who is enrolled and their face templates.

Templates are biometric data, bound to the exact model file that computed
them (its sha256): embeddings from another model are meaningless, so opening a
gallery with a different model is refused with a way out (re-enrol).

A new gallery is always built completely in a temporary file beside the live
one and swapped in with one atomic rename, so a failure or power cut at any
moment leaves either the old gallery or the new one in force, never a mix.
`secure_delete` makes SQLite overwrite deleted content, and the rollback
journal (not WAL) keeps no stale copies after a commit.

Every successful write (enrolment, `remove_person`) puts a NEW file in place
(a new inode), which is how a running recogniser notices the change: it
watches (st_ino, st_mtime_ns) of the gallery path. Writers are serialised by
an advisory lock on `<gallery>.lock`; readers need no lock.

Before anything opens a gallery for reading or writing, the file is inspected
read-only (``mode=ro``): a gallery from a newer clockface (``user_version`` or
``meta.schema_version`` above ours) or a SQLite file of another program is
refused with nothing written, not even a journal. An interrupted enrolment's
``gallery.db.new`` is removed by the next write, or when the service opens the
gallery (:func:`discard_stale_replacement`), but never while a writer holds
the lock.

Why one module over 300 lines: the schema, the read-only inspection before any write, the atomic replacement and removal share one file format and one lock; keeping them together keeps that format in one place.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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


@dataclass(frozen=True)
class PersonRecord:
    """What the gallery keeps about a person besides templates."""

    enrolled_at: str | None = None  # None: now
    employee_id: str | None = None


@dataclass(frozen=True)
class Removed:
    name: str
    templates: int


_GALLERY_TABLES = {"meta", "people", "templates"}
# Meta keys write_gallery itself sets; `meta=` may add others (e.g. central_version) but never these.
_OWN_META = frozenset({"schema_version", "model_name", "model_sha256", "embedding_size", "created_at"})


def _inspect(path: Path) -> tuple[int, set[str]]:
    """(schema version, table names) of an existing file, read without changing it."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and str(row[0]).isdigit():
                version = max(version, int(row[0]))
    finally:
        conn.close()
    return version, tables


def check_schema(path: Path) -> None:
    """Refuse (GalleryError) a gallery from a newer clockface or a file that is not a gallery.

    Unreadable files raise sqlite3.DatabaseError for the caller to word.
    """
    version, tables = _inspect(path)
    if version > SCHEMA_VERSION:
        raise GalleryError(
            f"{path} is schema version {version}; this clockface reads up to {SCHEMA_VERSION}: upgrade clockface"
        )
    if not _GALLERY_TABLES.issubset(tables):
        found = ", ".join(sorted(tables)) or "none"
        raise GalleryError(
            f"{path} is not a clockface gallery (its tables: {found}); check paths.gallery, the file was not changed"
        )


def _connect(path: Path) -> sqlite_utils.Database:
    conn = sqlite3.connect(str(path), timeout=10)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA journal_mode = DELETE")
    db.execute("PRAGMA synchronous = FULL")
    return db


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_folder(path: Path) -> None:
    """The gallery's folder must exist and be writable (one-line GalleryError)."""
    _check_folder(Path(path))


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

    def _open(self, write: bool = False) -> sqlite_utils.Database:
        """Check the file read-only, then open it: read-only for readers, read-write for `remove_person`."""
        if not self.path.is_file():
            raise GalleryError(f"no gallery at {self.path}: enrol people first with `clockface enroll DIR`")
        try:
            check_schema(self.path)
            if write:
                db = _connect(self.path)
            else:
                db = sqlite_utils.Database(
                    sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
                )
            db.execute("SELECT count(*) FROM meta").fetchone()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(
                f"gallery {self.path} is unreadable ({exc}); re-enrol with `clockface enroll DIR`"
            ) from None
        return db

    def meta(self) -> dict[str, str]:
        """The meta table: schema version, the model binding, and keys like `central_version`."""
        db = self._open()
        try:
            return {row["key"]: row["value"] for row in db["meta"].rows}
        finally:
            db.close()

    def binding(self) -> ModelBinding:
        meta = self.meta()
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
                raise GalleryError(
                    f"gallery template for {name} has {vec.size} values, expected {model.embedding_size}"
                )
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

    def records(self) -> dict[str, PersonRecord]:
        """name -> enrolment time and employee ID (to carry them into a new gallery)."""
        return {p.name: PersonRecord(p.enrolled_at, p.employee_id) for p in self.people()}


def _create_schema(db: sqlite_utils.Database, model: ModelBinding, extra_meta: Mapping[str, str]) -> None:
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # in the header, readable before any table
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("people").create(
        {"id": int, "name": str, "enrolled_at": str, "employee_id": str}, pk="id", not_null={"name"}
    )
    db.table("people").create_index(["name"], unique=True)
    db.table("templates").create(
        {"id": int, "person_id": int, "photo": str, "embedding": bytes, "created_at": str},
        pk="id",
        foreign_keys=[("person_id", "people", "id")],
    )
    db.table("meta").insert_all(
        [
            {"key": "schema_version", "value": str(SCHEMA_VERSION)},
            {"key": "model_name", "value": model.name},
            {"key": "model_sha256", "value": model.sha256},
            {"key": "embedding_size", "value": str(model.embedding_size)},
            {"key": "created_at", "value": _now()},
        ]
        + [{"key": key, "value": value} for key, value in extra_meta.items() if key not in _OWN_META]
    )


def write_gallery(
    path: Path,
    model: ModelBinding,
    templates: list[Template],
    keep: list[Template] | None = None,
    people: Mapping[str, PersonRecord] | None = None,
    meta: Mapping[str, str] | None = None,
) -> None:
    """Replace the gallery at `path` with exactly these templates, atomically.

    `keep` carries templates of people from the previous gallery (add mode);
    `people` their enrolment time and employee ID (default: now, none);
    `meta` extra meta rows, e.g. the `central_version` a terminal pulled
    (gallery/central.py), so the next poll can tell it already holds it.
    """
    path = Path(path)
    _check_folder(path)
    people = people or {}
    with gallery_lock(path):
        _refuse_replacing(path)
        try:
            with _replacement(path) as tmp:
                db = _connect(tmp)
                try:
                    with db.conn:
                        _fill(db, model, list(keep or []) + list(templates), people, meta or {})
                finally:
                    db.close()
        except sqlite3.OperationalError as exc:
            raise GalleryError(f"cannot write gallery {path}: {exc}") from None


def _refuse_replacing(path: Path) -> None:
    """A newer gallery or another program's database is never overwritten; an unreadable gallery may be."""
    if not path.is_file():
        return
    try:
        check_schema(path)
    except sqlite3.DatabaseError:
        return  # corrupt: replacing it is the documented way out


def discard_stale_replacement(path: Path) -> bool:
    """Remove a `<gallery>.new` an interrupted write left behind; True if one was removed.

    Only when no writer holds the gallery lock (a live enrolment's temporary
    file is not stale). Never blocks, and never creates the lock file for
    nothing: without a temporary file there is nothing to do.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".new")
    if not tmp.exists():
        return False
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        return False  # read-only folder: nothing could be removed anyway
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a writer is filling it right now
        tmp.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _fill(
    db: sqlite_utils.Database,
    model: ModelBinding,
    templates: list[Template],
    people: Mapping[str, PersonRecord],
    meta: Mapping[str, str],
) -> None:
    """Write a complete gallery into an empty database."""
    _create_schema(db, model, meta)
    ids: dict[str, int] = {}
    now = _now()
    for t in templates:
        if t.embedding.size != model.embedding_size:
            raise GalleryError(
                f"template for {t.person} has {t.embedding.size} values, expected {model.embedding_size}"
            )
        if t.person not in ids:
            record = people.get(t.person, PersonRecord())
            person_id = (
                db.table("people")
                .insert({"name": t.person, "enrolled_at": record.enrolled_at or now, "employee_id": record.employee_id})
                .last_pk
            )
            assert isinstance(person_id, int), "people.id is an INTEGER primary key: insert reports the new rowid"
            ids[t.person] = person_id
        db.table("templates").insert(
            {
                "person_id": ids[t.person],
                "photo": t.photo,
                "embedding": np.asarray(t.embedding, dtype="<f4").tobytes(),
                "created_at": now,
            }
        )


@contextlib.contextmanager
def _replacement(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` for the block to fill; it becomes `path`
    (durably, in one rename) when the block succeeds and is removed when it fails."""
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        _install(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _install(tmp: Path, path: Path) -> None:
    """Make the finished file `tmp` the gallery: durable first, then one rename."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def gallery_lock(path: Path) -> Iterator[None]:
    """Serialise writers of one gallery (two sticks, or a stick and `gallery remove`)."""
    lock = Path(path).with_name(Path(path).name + ".lock")
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_person(path: Path, name: str) -> Removed:
    """Erase one person: their row and every template, leaving no trace in the file.

    The person is deleted in place with `secure_delete` on (SQLite zeroes the
    freed cells and pages) and the file is VACUUMed; the rollback journal that
    held the old pages during the transaction is deleted at commit. The result
    is then copied to a new file that replaces the gallery, so a running
    recogniser reloads it (a new inode). Works whatever model made the gallery.
    """
    from gallery.layout import person_key  # pure name rules

    path = Path(path)
    store = GalleryStore(path)
    _check_folder(path)
    with gallery_lock(path):
        db = store._open(write=True)
        try:
            people = db.execute("SELECT id, name FROM people").fetchall()
            wanted = person_key(name)
            hits = [(pid, pname) for pid, pname in people if person_key(pname) == wanted]
            if not hits:
                known = ", ".join(sorted(p for _, p in people)) or "nobody"
                raise GalleryError(f"no one called {name!r} in the gallery (enrolled: {known})")
            pid, pname = hits[0]
            with db.conn:
                count = db.execute("DELETE FROM templates WHERE person_id = ?", [pid]).rowcount
                db.execute("DELETE FROM people WHERE id = ?", [pid])
            db.execute("VACUUM")
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"cannot remove {name} from {path}: {exc}") from None
        finally:
            db.close()
        try:
            with _replacement(path) as tmp:
                src = _connect(path)
                try:
                    src.execute("VACUUM INTO ?", [str(tmp)])
                finally:
                    src.close()
        except sqlite3.Error as exc:
            raise GalleryError(
                f"{pname} was erased from {path}, but the running terminal may not notice until restarted ({exc})"
            ) from None
    return Removed(pname, count)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
