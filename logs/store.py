"""The attendance log: an append-only SQLite database of who arrived when.

Attendance is evidence, so the store is built around three promises:

* a committed event survives a power cut (WAL journal, ``synchronous=FULL``,
  one short transaction per event);
* an event is never rewritten: triggers refuse ``UPDATE`` always and
  ``DELETE`` unless the retention/erasure path in this module has opened a
  deletion permit inside its own transaction, and every such deletion is
  written to ``audit_log``;
* the recogniser (one writer) and reports / the web view (readers) can work
  at the same time: WAL lets readers proceed while a write is in progress
  and ``busy_timeout`` makes writers queue instead of failing.

No biometric data (images, embeddings) is ever stored here: the gallery has
its own database, so the web view can expose this file without exposing
faces.

Schema history (``PRAGMA user_version``):

* v1 — the end-to-end prototype: ``events(id, person, event_type,
  timestamp_utc, distance, source)``.
* v2 — adds ``utc_offset_minutes`` and ``terminal_id`` to ``events``, the
  optional ``unknown_events`` table, ``audit_log``, append-only triggers and
  indexes for the per-person and per-day queries.
* v3 — the tamper-evident hash chain (:mod:`logs.chain`): ``prev_hash`` and
  ``chain_hash`` on ``events``, back-filled for existing rows in rowid order,
  and a unique index on ``prev_hash`` so two writers cannot fork the chain.
  Purge and erase record the chain cuts they make in ``audit_log``.
* v4 — ``central_confirmations(event_id, confirmed_at_utc)``: which events the
  central PostgreSQL has committed (issue 13). A separate table, so marking an
  event sent never UPDATEs it; rows are only inserted (``INSERT OR IGNORE``),
  and deleted only with their event, under the same permit, by purge/erase.

A file is inspected read-only before anything writes to it, so a database
from a newer clockface or another program is refused unchanged (no WAL
switch, no -wal/-shm files).

Why one module over 300 lines: every write to the attendance database (events, the chain link read in the same transaction, permits, audit rows, migrations) goes through this one class, so the evidence rules can be checked in one file; the pure chain maths is in logs/chain.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from logs import chain
from logs.chain import ChainReport, Cut, Problem

log = logging.getLogger(__name__)

EVENT_TYPES = ("check-in", "check-out", "seen")
SCHEMA_VERSION = 4
BUSY_TIMEOUT_MS = 10_000
# Fixed-width UTC text sorts chronologically, and SQLite's date functions
# read it directly (Datasette canned queries rely on that).
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class StoreError(RuntimeError):
    """A problem with the attendance database, as one line a person can act on."""


def format_utc(moment: datetime) -> str:
    """The stored text form of an instant; refuses naive datetimes (whose zone is a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC).strftime(_TS_FORMAT)


def parse_utc(text: str) -> datetime:
    """Inverse of :func:`format_utc`; also accepts v1 rows written without microseconds."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class AttendanceEvent:
    """One confirmed decision of the recogniser (per person, not per frame)."""

    person: str
    event_type: str  # "check-in" | "check-out" | "seen"
    timestamp_utc: datetime  # timezone-aware, UTC
    utc_offset_minutes: int  # the terminal's local offset at that instant (e.g. +60)
    distance: float  # match distance
    source: str  # e.g. "camera:0", "video:clip.mp4"
    terminal_id: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if not self.person.strip():
            raise ValueError("event person must not be empty")
        if self.event_type not in EVENT_TYPES:
            raise ValueError(f"event_type must be one of {', '.join(EVENT_TYPES)}, got {self.event_type!r}")
        if self.timestamp_utc.tzinfo is None or self.timestamp_utc.utcoffset() is None:
            raise ValueError("timestamp_utc must be timezone-aware")
        if not -16 * 60 <= self.utc_offset_minutes <= 16 * 60:
            raise ValueError(f"utc_offset_minutes out of range: {self.utc_offset_minutes}")

    @property
    def local_time(self) -> datetime:
        """The instant as the terminal's wall clock showed it (its recorded offset)."""
        return self.timestamp_utc.astimezone(timezone(timedelta(minutes=self.utc_offset_minutes)))

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["timestamp_utc"] = format_utc(self.timestamp_utc)
        row["distance"] = float(self.distance)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AttendanceEvent:
        return cls(
            id=row["id"],
            person=row["person"],
            event_type=row["event_type"],
            timestamp_utc=parse_utc(row["timestamp_utc"]),
            utc_offset_minutes=int(row["utc_offset_minutes"]),
            distance=float(row["distance"]),
            source=row["source"],
            terminal_id=row["terminal_id"],
        )


@dataclass(frozen=True)
class UnknownFaceEvent:
    """A face that matched nobody. Deliberately without image or embedding."""

    timestamp_utc: datetime
    utc_offset_minutes: int
    nearest_distance: float | None
    source: str
    terminal_id: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["timestamp_utc"] = format_utc(self.timestamp_utc)
        return row


# --- schema ----------------------------------------------------------------
# Migrations are frozen history: plain SQL, never edited once released.

_V1 = """
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    event_type TEXT NOT NULL CHECK (event_type IN ('check-in', 'check-out', 'seen')),
    timestamp_utc TEXT NOT NULL,
    distance REAL NOT NULL,
    source TEXT NOT NULL
);
"""

_APPEND_ONLY = """
CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table}
BEGIN
    SELECT RAISE(ABORT, '{table} is append-only: rows cannot be changed');
END;
CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table}
WHEN NOT EXISTS (SELECT 1 FROM _deletion_permit)
BEGIN
    SELECT RAISE(ABORT, '{table} is append-only: delete only through retention or erasure');
END;
"""

_V2 = (
    """
ALTER TABLE events ADD COLUMN utc_offset_minutes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN terminal_id TEXT NOT NULL DEFAULT 'unknown';
CREATE INDEX events_timestamp ON events (timestamp_utc);
CREATE INDEX events_person_timestamp ON events (person, timestamp_utc);
CREATE TABLE unknown_events (
    id TEXT PRIMARY KEY,
    timestamp_utc TEXT NOT NULL,
    utc_offset_minutes INTEGER NOT NULL,
    nearest_distance REAL,
    source TEXT NOT NULL,
    terminal_id TEXT NOT NULL
);
CREATE INDEX unknown_events_timestamp ON unknown_events (timestamp_utc);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at_utc TEXT NOT NULL,
    action TEXT NOT NULL,
    rows_affected INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TABLE _deletion_permit (reason TEXT NOT NULL);
"""
    + _APPEND_ONLY.format(table="events")
    + _APPEND_ONLY.format(table="unknown_events")
)

# v3 adds the chain. The update trigger is dropped only for the back-fill
# (which runs in the same transaction, see _backfill_chain) and then restored.
_V3 = """
DROP TRIGGER events_append_only_update;
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN chain_hash TEXT;
"""

_V3_RESTORE = """
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only: rows cannot be changed');
END;
CREATE UNIQUE INDEX events_prev_hash ON events (prev_hash);
"""

# v4: the central store's confirmations, beside the events (never a column on them:
# that would need an UPDATE). Append-only like events: a confirmation lost would
# only re-send an event (harmless, the centre ignores a known id), but the rule is
# kept the same everywhere so verify can check it.
_V4 = """
CREATE TABLE central_confirmations (
    event_id TEXT PRIMARY KEY,
    confirmed_at_utc TEXT NOT NULL
);
""" + _APPEND_ONLY.format(table="central_confirmations")

MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2, 3: _V3, 4: _V4}
"""``MIGRATIONS[n]`` takes a database from version n-1 to n (v3 continues in :func:`_backfill_chain`)."""

_OUR_TABLES = {"events", "unknown_events", "audit_log", "_deletion_permit", "central_confirmations"}
_CUT_ACTIONS = ("purge", "erase")


def _normalise_sql(text: str) -> str:
    return " ".join(text.replace(";", " ; ").split()).rstrip(" ;")


def _expected_triggers() -> dict[str, str]:
    """name -> normalised SQL of every trigger the current schema must have."""
    wanted: dict[str, str] = {}
    for script in (_V2, _V3_RESTORE, _V4):
        for statement in _split_sql(script):
            words = statement.split()
            if words[:2] == ["CREATE", "TRIGGER"]:
                wanted[words[2]] = _normalise_sql(statement)
    return wanted


def _backfill_chain(db: sqlite_utils.Database) -> None:
    """Chain the rows a v2 database already has, in insertion (rowid) order, then restore the trigger."""
    prev = chain.GENESIS
    rows = db.execute(f"SELECT rowid, {', '.join(chain.CHAINED_FIELDS)} FROM events ORDER BY rowid").fetchall()
    for rowid, *values in rows:
        link = chain.link_hash(prev, dict(zip(chain.CHAINED_FIELDS, values, strict=True)))
        db.execute("UPDATE events SET prev_hash = ?, chain_hash = ? WHERE rowid = ?", [prev, link, rowid])
        prev = link
    for statement in _split_sql(_V3_RESTORE):
        db.execute(statement)


_AFTER_MIGRATION: dict[int, Callable[[sqlite_utils.Database], None]] = {3: _backfill_chain}


def _header_version(path: Path) -> tuple[bool, int]:
    """(is WAL mode, user_version) straight from the SQLite header, without opening the file in SQLite."""
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return False, 0
    return header[18] == 2, int.from_bytes(header[60:64], "big")


def inspect_read_only(path: Path) -> tuple[int, set[str]]:
    """The user_version and table names of an existing file, read without changing it.

    ``mode=ro`` never writes a rollback-journal database; for a WAL database
    without a -wal file ``immutable=1`` also stops SQLite creating -wal/-shm.
    """
    wal, _ = _header_version(path)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    wal_file = path.with_name(path.name + "-wal")
    if wal and not wal_file.exists():
        uri += "&immutable=1"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    return version, tables


def _disk_full(path: Path) -> bool:
    """SQLite reports ENOSPC while creating its -wal/-shm files as a bare "disk I/O error"."""
    try:
        return shutil.disk_usage(path.parent).free < 64 * 1024
    except OSError:
        return False


def _one_line(path: Path, exc: BaseException) -> str:
    """Turn a sqlite3/OS error into the one line an operator needs."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    lowered = text.lower()
    if "file is not a database" in lowered or "malformed" in lowered:
        return f"{path}: file is not a database (corrupt or not SQLite); move it aside and restore a backup"
    if "disk is full" in lowered or "disk full" in lowered or _disk_full(path):
        return f"{path}: disk full, the event was not recorded; free space on the device"
    if "readonly" in lowered or "read-only" in lowered:
        return f"{path}: database or its folder is read-only; check permissions and the filesystem mount"
    if "unable to open" in lowered:
        return f"{path}: cannot open the database file; check that the folder exists and is writable"
    if "locked" in lowered or "busy" in lowered:
        return f"{path}: database is locked by another process for more than {BUSY_TIMEOUT_MS // 1000}s"
    return f"{path}: {text}"


class AttendanceStore:
    """Open (creating and migrating as needed) the attendance database at *path*.

    ``readonly=True`` is for reports: it never creates, migrates or writes,
    and refuses a database whose schema is not the current one.
    """

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        try:
            self._check_before_opening()
            self._conn = self._connect()
            self.db = sqlite_utils.Database(self._conn)
            if not readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            self._ensure_schema()
        except StoreError:
            self._close_quietly()
            raise
        except (sqlite3.Error, OSError) as exc:
            self._close_quietly()
            raise StoreError(_one_line(self.path, exc)) from exc

    # --- connection --------------------------------------------------------
    def _check_before_opening(self) -> None:
        """Refuse a newer or foreign database before any connection could change it."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        version, tables = inspect_read_only(self.path)
        self._refuse(version, tables)

    def _refuse(self, version: int, tables: set[str]) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: attendance database is schema version {version}; "
                f"this clockface reads up to {SCHEMA_VERSION}: upgrade clockface"
            )
        if version == 0 and tables - _OUR_TABLES - {"sqlite_sequence"}:
            raise StoreError(
                f"{self.path}: not an attendance database (it has other tables: {', '.join(sorted(tables - _OUR_TABLES))}); "
                "check the configured path"
            )

    def _connect(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.path}: folder {self.path.parent} does not exist")
        if self.readonly:
            if not self.path.exists():
                raise StoreError(f"{self.path}: no attendance database here yet")
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        else:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # closing a broken handle
                conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """One short write transaction, taken IMMEDIATE so writers queue on busy_timeout
        instead of failing when a deferred read lock cannot be upgraded."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.rollback()
                raise
            self.db.execute("COMMIT")
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self.db.rollback()
            raise StoreError(_one_line(self.path, exc)) from exc

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _ensure_schema(self) -> None:
        version = self.schema_version
        self._refuse(version, set(self.db.table_names()))
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise StoreError(
                f"{self.path}: schema v{version}, expected v{SCHEMA_VERSION}; run any logs command once without read-only access to migrate"
            )
        self.migrate()

    def migrate(self) -> list[int]:
        """Apply pending migrations, all in one transaction (so a crash leaves the old version intact).

        The version is re-read inside the write lock, so two processes opening a
        fresh database at once do not both migrate it.
        """
        applied: list[int] = []
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _split_sql(MIGRATIONS[target]):
                    db.execute(statement)
                if target in _AFTER_MIGRATION:
                    _AFTER_MIGRATION[target](db)
                db.execute(f"PRAGMA user_version={target}")
                applied.append(target)
            if applied and version > 0:
                self._audit(db, "migrate", 0, {"from": version, "to": SCHEMA_VERSION})
        if applied:
            log.info("attendance database %s migrated to schema v%d", self.path, SCHEMA_VERSION)
        return applied

    # --- writing -------------------------------------------------------------
    def record(self, event: AttendanceEvent) -> None:
        """Append *event* in its own committed transaction.

        Recording the same event id twice is a caller bug (a replayed decision);
        it raises rather than silently overwriting evidence.
        """
        row = event.to_row()
        try:
            with self._write() as db:
                # Read the tip inside the write lock: a second writer waits, then links to this row.
                prev = self._chain_tip(db)
                db.table("events").insert({**row, "prev_hash": prev, "chain_hash": chain.link_hash(prev, row)})
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"{self.path}: event {event.id} not recorded: {exc}") from exc

    def _chain_tip(self, db: sqlite_utils.Database) -> str:
        """The value the next event links to: the newest row's hash, or where the cuts left the chain."""
        row = db.execute("SELECT chain_hash FROM events ORDER BY rowid DESC LIMIT 1").fetchone()
        if row is not None:
            return str(row[0])
        cuts = self._cuts(db)
        return cuts[-1].head if cuts else chain.GENESIS

    def record_unknown(self, event: UnknownFaceEvent) -> None:
        """Append an unknown-face event (time and place only, never an image)."""
        try:
            with self._write() as db:
                db.table("unknown_events").insert(event.to_row())
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"{self.path}: unknown event {event.id} not recorded: {exc}") from exc

    # --- reading -------------------------------------------------------------
    def _read(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except sqlite3.Error as exc:
            raise StoreError(_one_line(self.path, exc)) from exc

    def last_event(self, person: str) -> AttendanceEvent | None:
        """The person's most recent event, so the recogniser can alternate check-in/check-out."""
        rows = self._read(
            lambda: list(
                self.db["events"].rows_where("person = ?", [person], order_by="timestamp_utc desc, rowid desc", limit=1)
            )
        )
        return AttendanceEvent.from_row(rows[0]) if rows else None

    def people(self) -> list[str]:
        """Every distinct person name in the log, sorted: an erasure matches them by person_key."""
        rows = self._read(lambda: self.db.execute("SELECT DISTINCT person FROM events ORDER BY person").fetchall())
        return [str(r[0]) for r in rows]

    def events_between(
        self, start_utc: datetime, end_utc: datetime, person: str | None = None
    ) -> list[AttendanceEvent]:
        """Events with ``start_utc <= timestamp < end_utc`` in time order (half-open, so days tile)."""
        where = "timestamp_utc >= ? and timestamp_utc < ?"
        params: list[Any] = [format_utc(start_utc), format_utc(end_utc)]
        if person is not None:
            where += " and person = ?"
            params.append(person)
        rows = self._read(lambda: list(self.db["events"].rows_where(where, params, order_by="timestamp_utc, rowid")))
        return [AttendanceEvent.from_row(row) for row in rows]

    def events_after(self, after_rowid: int = 0, limit: int | None = None) -> list[tuple[int, AttendanceEvent]]:
        """Events in insertion order after *after_rowid*: what ``logs tail -f`` polls."""
        rows = self._read(
            lambda: list(
                self.db["events"].rows_where(
                    "rowid > ?", [after_rowid], select="rowid, *", order_by="rowid", limit=limit
                )
            )
        )
        return [(row.pop("rowid"), AttendanceEvent.from_row(row)) for row in rows]

    def last_rowids(self, count: int) -> int:
        """The rowid after which the newest *count* events start (for ``tail -n``)."""
        row = self._read(
            lambda: self.db.execute(
                "select coalesce(min(rowid) - 1, 0) from (select rowid from events order by rowid desc limit ?)",
                [count],
            ).fetchone()
        )
        return int(row[0])

    def max_rowid(self) -> int:
        return int(self._read(lambda: self.db.execute("select coalesce(max(rowid), 0) from events").fetchone())[0])

    def count_before(self, cutoff_utc: datetime) -> int:
        """How many events a purge at *cutoff_utc* would remove (for the confirmation prompt)."""
        return self._read(lambda: self.db["events"].count_where("timestamp_utc < ?", [format_utc(cutoff_utc)]))

    # --- the central store's confirmations (device/sync) ---------------------
    _UNCONFIRMED = "FROM events e WHERE NOT EXISTS (SELECT 1 FROM central_confirmations c WHERE c.event_id = e.id)"

    def unconfirmed(self, limit: int) -> list[AttendanceEvent]:
        """Up to *limit* events the central store has not confirmed, oldest first (insertion order).

        Rowid order, not timestamp order: a clock that jumped back an hour must not
        starve the events written before the jump.
        """

        def run() -> list[AttendanceEvent]:
            cursor = self.db.execute(f"SELECT e.* {self._UNCONFIRMED} ORDER BY e.rowid LIMIT ?", [limit])
            names = [d[0] for d in cursor.description]
            return [AttendanceEvent.from_row(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

        return list(self._read(run))

    def confirm(self, ids: list[str], at: datetime) -> int:
        """Note that the central store has committed *ids*; returns how many were new.

        One transaction for the batch, ``INSERT OR IGNORE`` so confirming twice is
        harmless, and only ids of events this log holds (a stray id confirms nothing).
        """
        stamp = format_utc(at)
        with self._write() as db:
            before = db.execute("SELECT total_changes()").fetchone()[0]
            db.conn.executemany(
                "INSERT OR IGNORE INTO central_confirmations (event_id, confirmed_at_utc) "
                "SELECT id, ? FROM events WHERE id = ?",
                [(stamp, event_id) for event_id in ids],
            )
            return int(db.execute("SELECT total_changes()").fetchone()[0] - before)

    def backlog(self) -> int:
        """How many events still wait for the central store's confirmation."""
        return int(self._read(lambda: self.db.execute(f"SELECT count(*) {self._UNCONFIRMED}").fetchone()[0]))

    def audit_entries(self) -> list[dict[str, Any]]:
        return self._read(lambda: list(self.db["audit_log"].rows_where(order_by="id")))

    # --- integrity -------------------------------------------------------------
    @staticmethod
    def _cuts(db: sqlite_utils.Database) -> list[Cut]:
        """Every chain cut purge/erase recorded, oldest first."""
        cuts: list[Cut] = []
        placeholders = ", ".join("?" for _ in _CUT_ACTIONS)
        for (detail,) in db.execute(
            f"SELECT detail FROM audit_log WHERE action IN ({placeholders}) ORDER BY id", list(_CUT_ACTIONS)
        ).fetchall():
            try:
                recorded = json.loads(detail).get("chain_cuts", [])
                cuts.extend(Cut(str(c["after"]), str(c["head"])) for c in recorded)
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # a malformed entry records nothing the walk could use
        return cuts

    def chain_head(self) -> str:
        """The current chain head: write it down, or send it off the device, to catch a rewritten chain."""
        return str(self._read(lambda: self._chain_tip(self.db)))

    def verify(self, expect_head: str | None = None) -> ChainReport:
        """Check the whole chain, the append-only triggers and the anti-fork index."""

        def run() -> ChainReport:
            columns = ", ".join(("prev_hash", "chain_hash", *chain.CHAINED_FIELDS))
            cursor = self.db.execute(f"SELECT rowid, {columns} FROM events ORDER BY rowid")
            names = [d[0] for d in cursor.description][1:]
            rows = ((r[0], dict(zip(names, r[1:], strict=True))) for r in cursor)
            report = chain.verify_chain(rows, self._cuts(self.db), expect_head)
            return ChainReport(report.events, report.head, report.problems + self._schema_problems())

        return self._read(run)

    def _schema_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        present = {
            name: _normalise_sql(sql or "")
            for name, sql in self.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        }
        for name, sql in _expected_triggers().items():
            if name not in present:
                problems.append(Problem("trigger missing", f"{name} is gone: rows could be changed or deleted"))
            elif present[name] != sql:
                problems.append(Problem("trigger changed", f"{name} differs from the one clockface creates"))
        index = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'events_prev_hash'")
        if index.fetchone() is None:
            problems.append(Problem("index missing", "events_prev_hash is gone: the chain could fork"))
        if self.db.execute("SELECT count(*) FROM _deletion_permit").fetchone()[0]:
            problems.append(Problem("permit open", "_deletion_permit has rows: deletes are not refused"))
        return problems

    # --- the only delete paths ----------------------------------------------
    def _audit(self, db: sqlite_utils.Database, action: str, rows: int, detail: dict[str, Any]) -> None:
        db.table("audit_log").insert(
            {
                "at_utc": format_utc(datetime.now(UTC)),
                "action": action,
                "rows_affected": rows,
                "detail": json.dumps(detail, sort_keys=True),
            }
        )

    def _permitted_delete(
        self, action: str, where: str, params: list[Any], detail: dict[str, Any], include_unknown: bool
    ) -> int:
        """Delete from events and unknown_events under a permit that lives only inside
        this transaction, and write the audit entry in the same commit."""
        with self._write() as db:
            cuts = chain.cuts_for(
                (prev, link, bool(doomed))
                for prev, link, doomed in db.execute(
                    f"SELECT prev_hash, chain_hash, ({where}) FROM events ORDER BY rowid", params
                ).fetchall()
            )
            detail = {**detail, "chain_cuts": [cut.to_dict() for cut in cuts]}
            db.execute("INSERT INTO _deletion_permit (reason) VALUES (?)", [action])
            # The confirmations go with their events: a kept confirmation would name an event that is gone.
            confirmations = db.execute(
                f"DELETE FROM central_confirmations WHERE event_id IN (SELECT id FROM events WHERE {where})", params
            ).rowcount
            removed = db.execute(f"DELETE FROM events WHERE {where}", params).rowcount
            removed_unknown = (
                db.execute(f"DELETE FROM unknown_events WHERE {where}", params).rowcount if include_unknown else 0
            )
            db.execute("DELETE FROM _deletion_permit")
            self._audit(
                db,
                action,
                removed + removed_unknown,
                {**detail, "events": removed, "unknown_events": removed_unknown, "confirmations": confirmations},
            )
        log.info("attendance %s: removed %d events, %d unknown events", action, removed, removed_unknown)
        return removed + removed_unknown

    def purge_before(self, cutoff_utc: datetime, reason: str = "retention") -> int:
        """Remove events strictly before *cutoff_utc*; returns rows removed. Logged in audit_log."""
        cutoff = format_utc(cutoff_utc)
        return self._permitted_delete(
            "purge", "timestamp_utc < ?", [cutoff], {"before_utc": cutoff, "reason": reason}, include_unknown=True
        )

    def erase_person(self, person: str) -> int:
        """Remove every event of *person* (a data-subject erasure request). Logged in audit_log."""
        return self._permitted_delete("erase", "person = ?", [person], {"person": person}, include_unknown=False)

    # --- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        self._close_quietly()

    def __enter__(self) -> AttendanceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (``BEGIN ... END;``) whole."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
