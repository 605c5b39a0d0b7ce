"""The gallery from the centre: publish a version, erase a person everywhere, a terminal's pull.

A fleet keeps one gallery in the central PostgreSQL (schema `clockface`, see
docs/central.md): every publish makes a NEW numbered version (its templates
bound to one model's sha256), so a terminal only has to compare one number
with the `central_version` its local gallery records to know whether there is
anything to do. Old versions stay (what a terminal held yesterday can be
told), except that an erasure request removes the person from every one.

Model lines: a version carries over the templates of the current version only
when both are for the same model sha256. Publishing for another model starts
a new line from the new templates alone (`Published.new_line`); terminals
still on the old model then refuse the new version and keep their gallery
until they are given the new model, because embeddings of two models cannot
be compared.

Pure SQL on a psycopg connection and the local gallery file's I/O
(gallery/store.py's atomic swap and secure delete); no device imports. The
terminal side (:func:`pull_gallery`) needs SELECT on the two views only.
Writers (publish, erase) serialise on a table lock, so two workstations
publishing at once make two versions, one after the other, neither losing
the other's people.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gallery.layout import person_key
from gallery.store import (
    GalleryError,
    GalleryStore,
    ModelBinding,
    PersonRecord,
    Template,
    remove_person,
    write_gallery,
)

if TYPE_CHECKING:
    import psycopg

CENTRAL_VERSION = "central_version"  # the gallery meta key a terminal's gallery records
_LOCK = "LOCK TABLE clockface.gallery_versions IN SHARE ROW EXCLUSIVE MODE"


@dataclass(frozen=True)
class Published:
    """What a publish made: the new version, and whether it started a new model line."""

    version: int
    previous: int | None  # the version that was current before
    new_line: bool  # the previous version was for another model: nothing was carried over
    people: int  # in the new version
    templates: int  # in the new version
    carried: int  # templates copied from the previous version

    def line(self) -> str:
        start = (
            "a new model line: nothing carried over from version "
            f"{self.previous} (another model), terminals on the old model keep their gallery"
            if self.new_line
            else f"{self.carried} template{'s' if self.carried != 1 else ''} carried over from version {self.previous}"
            if self.previous is not None
            else "the first version"
        )
        return f"published central gallery version {self.version}: {self.people} people, {self.templates} templates ({start})"


@dataclass(frozen=True)
class RemovedCentral:
    """An erasure request's result at the centre."""

    name: str
    in_gallery: bool  # False: nobody of that name was enrolled (only events were erased)
    templates: int  # template rows deleted, over every version
    versions: int  # how many versions held them
    version: int | None  # the new current version published without them (None: no version exists)
    events: int | None  # attendance events deleted (None: not asked)


@dataclass(frozen=True)
class PullOutcome:
    """One poll of a terminal: what the centre offered and what was done with it."""

    version: int | None  # the centre's current version (None: none published yet)
    applied: bool  # the local gallery was rewritten
    refused: str | None  # one line: why the version was not applied (e.g. another model)
    people: int  # people in the local gallery now in force
    removed: tuple[str, ...] = ()  # people securely erased from the local gallery by this pull


@dataclass(frozen=True)
class _Version:
    id: int
    model_sha256: str
    model_name: str
    embedding_size: int


# --- the centre's side (an administrator's connection) -----------------------------------
def current_version(conn: psycopg.Connection) -> _Version | None:
    """The newest version, read from the view a terminal reads too."""
    row = conn.execute(
        "SELECT version_id, model_sha256, model_name, embedding_size FROM clockface.current_gallery_version"
    ).fetchone()
    return None if row is None else _Version(int(row[0]), row[1], row[2], int(row[3]))


def current_gallery(conn: psycopg.Connection) -> tuple[ModelBinding | None, list[Template], dict[str, PersonRecord]]:
    """The current version as gallery values: its model, templates and people (to enrol against)."""
    version = current_version(conn)
    if version is None:
        return None, [], {}
    templates, records = _templates_of(conn, version)
    return ModelBinding(version.model_name, version.model_sha256, version.embedding_size), templates, records


def _templates_of(conn: psycopg.Connection, version: _Version) -> tuple[list[Template], dict[str, PersonRecord]]:
    rows = conn.execute(
        "SELECT version_id, person, employee_id, photo, embedding FROM clockface.current_gallery_templates "
        "ORDER BY person, photo"
    ).fetchall()
    if any(int(r[0]) != version.id for r in rows):
        raise _VersionMoved()
    templates = [Template(r[1], r[3], np.frombuffer(bytes(r[4]), dtype="<f4").copy()) for r in rows]
    for t in templates:
        if t.embedding.size != version.embedding_size:
            raise GalleryError(
                f"central gallery version {version.id}: a template of {t.person} has {t.embedding.size} values, "
                f"expected {version.embedding_size}"
            )
    return templates, {r[1]: PersonRecord(None, r[2]) for r in rows}


class _VersionMoved(Exception):
    """A newer version was published between two reads: try again at the next poll."""


def publish_version(
    conn: psycopg.Connection,
    model: ModelBinding,
    templates: list[Template],
    people: Mapping[str, PersonRecord] | None = None,
    replace_people: Iterable[str] = (),
    note: str = "",
) -> Published:
    """Publish a new current version, in one transaction.

    The new version is the current version's templates (when it is for the
    same model sha256) minus `replace_people` and minus anyone in `templates`
    (new photos of a person replace their old templates, as a local
    enrolment does), plus `templates`. `people` gives employee IDs (names are
    matched like file names: case and spacing do not matter). An audit_log
    row records who published what (counts, never an embedding).
    """
    people = people or {}
    for t in templates:
        if t.embedding.size != model.embedding_size:
            raise GalleryError(
                f"template for {t.person} has {t.embedding.size} values, expected {model.embedding_size}"
            )
    with conn.transaction():
        conn.execute(_LOCK)
        previous = current_version(conn)
        new_line = previous is not None and previous.model_sha256 != model.sha256
        ids = _upsert_people(conn, [t.person for t in templates], people)
        row = conn.execute(
            "INSERT INTO clockface.gallery_versions (model_sha256, model_name, embedding_size, note) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            [model.sha256, model.name, model.embedding_size, note],
        ).fetchone()
        assert row is not None, "INSERT ... RETURNING returns the new row"
        version = int(row[0])
        carried = 0
        if previous is not None and not new_line:
            drop = {person_key(n) for n in replace_people} | {person_key(t.person) for t in templates}
            dropped_ids = [pid for key, (pid, _) in _people_by_key(conn).items() if key in drop]
            carried = conn.execute(
                "INSERT INTO clockface.gallery_templates (version_id, person_id, photo, embedding) "
                "SELECT %s, person_id, photo, embedding FROM clockface.gallery_templates "
                "WHERE version_id = %s AND NOT (person_id = ANY(%s))",
                [version, previous.id, dropped_ids],
            ).rowcount
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO clockface.gallery_templates (version_id, person_id, photo, embedding) VALUES (%s, %s, %s, %s)",
                [
                    (version, ids[person_key(t.person)], t.photo, np.asarray(t.embedding, dtype="<f4").tobytes())
                    for t in templates
                ],
            )
        count = conn.execute(
            "SELECT count(DISTINCT person_id), count(*) FROM clockface.gallery_templates WHERE version_id = %s",
            [version],
        ).fetchone()
        assert count is not None, "an aggregate returns one row"
        result = Published(version, previous.id if previous else None, new_line, int(count[0]), int(count[1]), carried)
        _audit(
            conn,
            "gallery.publish",
            {
                "version": version,
                "previous": result.previous,
                "new_line": new_line,
                "model_name": model.name,
                "model_sha256": model.sha256,
                "people": result.people,
                "templates": result.templates,
                "carried": carried,
                "replaced": sorted(set(replace_people)),
                "note": note,
            },
        )
    return result


def _people_by_key(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    return {person_key(name): (int(pid), name) for pid, name in conn.execute("SELECT id, name FROM clockface.people")}


def _upsert_people(conn: psycopg.Connection, names: list[str], people: Mapping[str, PersonRecord]) -> dict[str, int]:
    """person_key -> people.id for everyone in `names` and `people`, inserting or renaming as needed.

    The newest spelling wins (like a stick's), and an employee ID given in
    `people` replaces the stored one; a person without a record keeps theirs.
    """
    known = _people_by_key(conn)
    records = {person_key(n): (n, r) for n, r in people.items()}
    wanted = {person_key(n): n for n in names} | {k: n for k, (n, _) in records.items()}
    ids: dict[str, int] = {}
    for key, name in wanted.items():
        record = records.get(key, (name, None))[1]
        if key in known:
            pid, old_name = known[key]
            if old_name != name:
                conn.execute("UPDATE clockface.people SET name = %s WHERE id = %s", [name, pid])
            if record is not None:
                conn.execute("UPDATE clockface.people SET employee_id = %s WHERE id = %s", [record.employee_id, pid])
        else:
            row = conn.execute(
                "INSERT INTO clockface.people (name, employee_id) VALUES (%s, %s) RETURNING id",
                [name, record.employee_id if record else None],
            ).fetchone()
            assert row is not None, "INSERT ... RETURNING returns the new row"
            pid = int(row[0])
        ids[key] = pid
    return ids


def _audit(conn: psycopg.Connection, action: str, detail: Mapping[str, Any]) -> None:
    conn.execute(
        "INSERT INTO clockface.audit_log (action, detail) VALUES (%s, %s::jsonb)",
        [action, json.dumps(detail, ensure_ascii=False)],
    )


def remove_person_everywhere(conn: psycopg.Connection, name: str, with_events: bool = False) -> RemovedCentral:
    """The erasure request at the centre, in one transaction.

    Deletes the person's templates from EVERY version (not only the current
    one), their people row, with `with_events` their attendance events, and
    publishes a new current version without them, so every terminal's next
    poll scrubs them from its local files (:func:`pull_gallery`). It also
    writes the request to `clockface.erasures`, which every terminal's sync
    agent reads before its next push: with `with_events` each terminal then
    erases the person's events from its own log (device/sync/erasures.py).
    The audit_log row holds the name and counts, never an embedding. A name
    nobody has is a GalleryError listing who is enrolled (with
    `with_events`, only when there are no events of that name either).

    With `with_events` the events table is locked against inserts (SHARE)
    before the delete: a terminal's batch in flight either committed before
    (and is deleted here) or waits and then meets the v3 guard trigger,
    which skips the person's events timed before this request.
    """
    with conn.transaction():
        conn.execute(_LOCK)
        known = _people_by_key(conn)
        hit = known.get(person_key(name))
        events: int | None = None
        conn.execute(
            "INSERT INTO clockface.erasures (person, with_logs) VALUES (%s, %s)",
            [hit[1] if hit is not None else name, with_events],
        )
        if with_events:
            conn.execute("LOCK TABLE clockface.events IN SHARE MODE")
            names = [
                n
                for (n,) in conn.execute("SELECT DISTINCT person FROM clockface.events")
                if person_key(n) == person_key(name)
            ]
            events = conn.execute("DELETE FROM clockface.events WHERE person = ANY(%s)", [names]).rowcount
        if hit is None:
            if not events:
                enrolled = ", ".join(sorted(n for _, n in known.values())) or "nobody"
                raise GalleryError(f"no one called {name!r} in the central gallery (enrolled: {enrolled})")
            result = RemovedCentral(name, False, 0, 0, None, events)
        else:
            pid, pname = hit
            count = conn.execute(
                "SELECT count(*), count(DISTINCT version_id) FROM clockface.gallery_templates WHERE person_id = %s",
                [pid],
            ).fetchone()
            assert count is not None, "an aggregate returns one row"
            conn.execute("DELETE FROM clockface.gallery_templates WHERE person_id = %s", [pid])
            conn.execute("DELETE FROM clockface.people WHERE id = %s", [pid])
            version = _republish(conn, "erasure request")
            result = RemovedCentral(pname, True, int(count[0]), int(count[1]), version, events)
        _audit(
            conn,
            "gallery.erase",
            {
                "person": result.name,
                "in_gallery": result.in_gallery,
                "templates": result.templates,
                "versions": result.versions,
                "new_version": result.version,
                "events": events,
            },
        )
    return result


def compact_after_erasure(conn: psycopg.Connection, with_events: bool = False) -> None:
    """Rewrite the tables an erasure deleted from, so the dead rows leave the table files too.

    A PostgreSQL DELETE only marks rows dead: their bytes stay in the table's
    pages until the space is reused. VACUUM FULL writes the small gallery
    tables anew without them (a brief exclusive lock: a terminal's poll waits
    a moment). The events table can be large, so it gets a plain VACUUM,
    which frees the space for reuse without blocking inserts. Needs an
    autocommit connection (VACUUM cannot run in a transaction); the WAL and
    any backups keep their copies until they are recycled (docs/central.md).
    """
    conn.execute("VACUUM (FULL) clockface.gallery_templates, clockface.people")
    if with_events:
        conn.execute("VACUUM clockface.events")


def _republish(conn: psycopg.Connection, note: str) -> int | None:
    """A copy of the current version as a new version (so terminals see a new number)."""
    current = current_version(conn)
    if current is None:
        return None
    row = conn.execute(
        "INSERT INTO clockface.gallery_versions (model_sha256, model_name, embedding_size, note) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        [current.model_sha256, current.model_name, current.embedding_size, note],
    ).fetchone()
    assert row is not None, "INSERT ... RETURNING returns the new row"
    conn.execute(
        "INSERT INTO clockface.gallery_templates (version_id, person_id, photo, embedding) "
        "SELECT %s, person_id, photo, embedding FROM clockface.gallery_templates WHERE version_id = %s",
        [int(row[0]), current.id],
    )
    return int(row[0])


# --- a terminal's side (SELECT on the two views only) -----------------------------------
def local_central_version(gallery_path: Path) -> int | None:
    """The central version the local gallery holds (None: none, or unreadable)."""
    store = GalleryStore(gallery_path)
    if not store.exists():
        return None
    try:
        value = store.meta().get(CENTRAL_VERSION)
    except (GalleryError, KeyError):
        return None
    return int(value) if value is not None and value.isdigit() else None


def _local_people(gallery_path: Path) -> dict[str, PersonRecord]:
    store = GalleryStore(gallery_path)
    if not store.exists():
        return {}
    try:
        return store.records()
    except GalleryError:
        return {}  # unreadable: write_gallery replaces it


def pull_gallery(conn: psycopg.Connection, gallery_path: Path, model: ModelBinding) -> PullOutcome:
    """Bring the local gallery to the centre's current version, if it is for this terminal's model.

    Unchanged version: one small SELECT, nothing written. Another model's
    version: refused (one line naming both sha256 prefixes), the old gallery
    stays byte for byte. Otherwise everyone local who is not in the new
    version is first erased with gallery.store.remove_person (secure delete:
    their templates are scrubbed from the old file's pages too, not only
    left behind in an unlinked file), then the version is written with the
    atomic swap, recording `central_version`; the running recogniser reloads
    on the new inode.
    """
    gallery_path = Path(gallery_path)
    version = current_version(conn)
    held = local_central_version(gallery_path)
    local = _local_people(gallery_path)
    if version is None or version.id == held:
        return PullOutcome(None if version is None else version.id, False, None, len(local))
    if version.model_sha256 != model.sha256:
        kept = f"version {held}" if held is not None else "its current gallery"
        return PullOutcome(
            version.id,
            False,
            f"central gallery version {version.id} is for model {version.model_name} "
            f"(sha256 {version.model_sha256[:12]}), this terminal runs {model.name} (sha256 {model.sha256[:12]}): "
            f"not applied, the terminal keeps {kept}; give it the version's model or publish one for this model",
            len(local),
        )
    try:
        templates, records = _templates_of(conn, version)
        if current_version(conn) != version:
            raise _VersionMoved()
    except _VersionMoved:
        return PullOutcome(version.id, False, None, len(local))  # the next poll takes the newer one
    wanted = {person_key(t.person) for t in templates}
    removed = []
    for name in local:
        if person_key(name) not in wanted:
            with contextlib.suppress(GalleryError):  # an unreadable gallery is replaced whole below
                removed.append(remove_person(gallery_path, name).name)
    local_keys = {person_key(n): r for n, r in local.items()}
    people = {
        n: PersonRecord(local_keys[person_key(n)].enrolled_at if person_key(n) in local_keys else None, r.employee_id)
        for n, r in records.items()
    }
    write_gallery(gallery_path, model, templates, people=people, meta={CENTRAL_VERSION: str(version.id)})
    return PullOutcome(version.id, True, None, len(records), tuple(removed))
