"""Fleet reports: every terminal's events from the central store, through the same report maths.

The central ``clockface.events`` table holds the events of all terminals, so a
person who checks in at the front gate and out at the back gate is one
person-day with a first-in and a last-out. The report's rules are those of
:mod:`logs.reports`; for a day of a whole fleet the server applies them
(:mod:`logs.central.day_sql`, checked equal to the Python rules by the tests)
and sends one row per person-day instead of every event.

Reads of events (``tail``, and the comparison path) are one query over the
``(timestamp_utc)`` index, fetched as binary rows and turned into
:class:`AttendanceEvent` with ``terminal_id`` taken from the central
``terminal`` column: the terminal the central store recorded, not one a
terminal could claim for itself.

Only an administrator or reporting role can read these rows: a terminal's
role has no SELECT on ``clockface.events``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from logs import reports
from logs.central import day_sql
from logs.central.connect import CentralError, CentralTarget, explain
from logs.store import AttendanceEvent

if TYPE_CHECKING:
    import psycopg

# id as text: the report wants the UUID's string, and building uuid.UUID objects only to
# turn them back into strings costs more than the rest of the row.
_COLUMNS = "id::text AS id, terminal, person, event_type, timestamp_utc, utc_offset_minutes, distance, source"

# How far back a follower re-reads (see CentralFollower): longer than any one
# sync batch can stay open between its INSERT and its COMMIT.
FOLLOW_OVERLAP = timedelta(minutes=2)


@contextmanager
def reading(dsn: str) -> Iterator[None]:
    """Turn a failed read into one :class:`CentralError` line (the CLI's error path shows it).

    The usual one: the DSN is a terminal's login, which may add events but
    never read them (row level security and no SELECT grant, by design).
    """
    import psycopg

    try:
        yield
    except psycopg.errors.InsufficientPrivilege:
        raise CentralError(
            f"central server {CentralTarget.from_dsn(dsn).where()}: this login may not read the events"
            " (a terminal's role only adds its own; report with the administrator's or a reporting login)"
        ) from None
    except psycopg.Error as exc:
        raise CentralError(explain(str(exc), CentralTarget.from_dsn(dsn).where())) from None


def _event(row: tuple[Any, ...]) -> AttendanceEvent:
    event_id, terminal, person, event_type, moment, offset, distance, source = row
    return AttendanceEvent(
        person=person,
        event_type=event_type,
        timestamp_utc=moment.astimezone(UTC),
        utc_offset_minutes=offset,
        distance=float(distance),
        source=source,
        terminal_id=terminal,
        id=event_id,
    )


def events_between(
    conn: psycopg.Connection[Any], start_utc: datetime, end_utc: datetime, person: str | None = None
) -> list[AttendanceEvent]:
    """Events of every terminal with ``start_utc <= timestamp < end_utc``, in time order (half-open, like the local store)."""
    where = "timestamp_utc >= %s AND timestamp_utc < %s"
    params: list[Any] = [start_utc, end_utc]
    if person is not None:
        where += " AND person = %s"
        params.append(person)
    with conn.cursor(binary=True) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM clockface.events WHERE {where} ORDER BY timestamp_utc, id", params)
        return [_event(row) for row in cur.fetchall()]


def daily_rows(
    conn: psycopg.Connection[Any],
    zone: ZoneInfo,
    first_day: date,
    last_day: date,
    expected_start: time | None = None,
    person: str | None = None,
) -> list[reports.DayRow]:
    """The fleet's report rows for local days *first_day* .. *last_day*, one row per person-day from the server.

    Equal to :func:`logs.reports.daily_rows` over every event of the window
    (:mod:`logs.central.day_sql` says why the server computes them and how the
    equality is kept).
    """
    return day_sql.day_rows(conn, zone, first_day, last_day, expected_start, person=person)


def latest(conn: psycopg.Connection[Any], count: int) -> list[tuple[datetime, AttendanceEvent]]:
    """The *count* events the central store received last, oldest first, each with its ``received_at``."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            f"SELECT received_at, {_COLUMNS} FROM"
            f" (SELECT received_at, {_COLUMNS} FROM clockface.events ORDER BY received_at DESC, id DESC LIMIT %s) AS newest"
            " ORDER BY received_at, id",
            [count],
        )
        return [(row[0], _event(row[1:])) for row in cur.fetchall()]


@dataclass
class CentralFollower:
    """``logs tail -f --central``: each new central event once, in the order the store received them.

    ``received_at`` is stamped when a row is inserted, but the row becomes
    visible only when its batch commits: a batch that inserted earlier and
    committed later shows up *behind* rows already printed. So each poll
    re-reads from ``FOLLOW_OVERLAP`` before the newest ``received_at`` seen
    and skips the ids it already printed (forgotten once they fall out of
    the overlap window), instead of trusting a strictly advancing cursor.
    """

    conn: psycopg.Connection[Any]
    overlap: timedelta = FOLLOW_OVERLAP
    newest: datetime | None = None
    printed: dict[str, datetime] = field(default_factory=dict)

    def start(self, count: int) -> list[AttendanceEvent]:
        """The last *count* events (none for 0), and remember where following starts."""
        if count > 0:
            found = latest(self.conn, count)
        else:
            found = []
            with self.conn.cursor(binary=True) as cur:
                cur.execute("SELECT max(received_at) FROM clockface.events")
                row = cur.fetchone()
                self.newest = row[0] if row else None
        self.conn.commit()  # end the read's transaction: the next poll must see new commits
        return self._note(found)

    def poll(self) -> list[AttendanceEvent]:
        """Events committed since the last poll that were not printed yet."""
        since = self.newest - self.overlap if self.newest else datetime.min.replace(tzinfo=UTC)
        with self.conn.cursor(binary=True) as cur:
            cur.execute(
                f"SELECT received_at, {_COLUMNS} FROM clockface.events WHERE received_at >= %s"
                " ORDER BY received_at, id",
                [since],
            )
            found = [(row[0], _event(row[1:])) for row in cur.fetchall()]
        self.conn.commit()
        return self._note([(at, e) for at, e in found if e.id not in self.printed])

    def _note(self, found: list[tuple[datetime, AttendanceEvent]]) -> list[AttendanceEvent]:
        for at, event in found:
            self.printed[event.id] = at
            if self.newest is None or at > self.newest:
                self.newest = at
        if self.newest is not None:
            horizon = self.newest - self.overlap
            self.printed = {i: at for i, at in self.printed.items() if at >= horizon}
        return [event for _, event in found]
