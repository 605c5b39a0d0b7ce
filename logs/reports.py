"""Report arithmetic: shifts, first-in/last-out, hours and lateness per person per local day.

Everything here is a pure function of events and a time zone, so the rules
can be tested without a database and reused by the CLI and any future
export. The rules, in one place:

* Days are calendar days in the terminal's configured IANA zone, computed
  with :mod:`zoneinfo`; a DST day is 23 or 25 hours long and hours are real
  elapsed time, never wall-clock differences.
* A *shift* runs from a check-in to the next check-out of the same person.
  It belongs to the local day it started on, so a night shift (22:00-06:00)
  is one row with 8 hours, not two half-rows.
* A repeated check-in while a shift is open is a duplicate and ignored; a
  check-out with no open shift moves the end of the person's previous shift
  (the last check-out wins) if that shift began less than ``max_shift`` ago.
  A check-in more than ``max_shift`` old without a check-out is *open*: it
  counts no hours and is flagged, because inventing an end time would be
  inventing evidence.
* ``seen`` events do not open or close shifts. A person-day with sightings
  but no check-in/check-out at all is reported from the sightings (first and
  last seen, ``basis="seen"``), so a terminal configured to log only
  sightings still produces useful reports.
* Late means the first check-in of the day is after ``expected_start``
  (local wall time on that day).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from logs.store import AttendanceEvent

DEFAULT_MAX_SHIFT = timedelta(hours=16)


@dataclass(frozen=True)
class Shift:
    person: str
    start: datetime | None  # None: a check-out with nothing to pair with
    end: datetime | None  # None: still open (or never closed)


@dataclass(frozen=True)
class DayRow:
    """One person on one local day. Times are aware datetimes in the report's zone."""

    person: str
    day: date
    first_in: datetime | None
    last_out: datetime | None
    hours: float
    shifts: int  # closed shifts counted in hours
    open: bool  # a check-in without a check-out
    late_minutes: int | None  # minutes after expected_start; None when not late or not applicable
    basis: str  # "check-in" or "seen"

    @property
    def late(self) -> bool:
        return self.late_minutes is not None


@dataclass(frozen=True)
class PersonTotal:
    person: str
    days: int
    hours: float
    late_days: int
    open_days: int


def day_bounds_utc(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where local *day* starts and the next day starts (23/24/25 h apart)."""
    return _local_midnight_utc(day, zone), _local_midnight_utc(day + timedelta(days=1), zone)


def range_bounds_utc(first_day: date, last_day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Half-open UTC interval covering local days *first_day* .. *last_day* inclusive."""
    if last_day < first_day:
        raise ValueError(f"--to {last_day} is before --from {first_day}")
    return _local_midnight_utc(first_day, zone), _local_midnight_utc(last_day + timedelta(days=1), zone)


def fetch_window_utc(
    first_day: date, last_day: date, zone: ZoneInfo, max_shift: timedelta = DEFAULT_MAX_SHIFT
) -> tuple[datetime, datetime]:
    """The UTC interval whose events :func:`daily_rows` needs for days *first_day* .. *last_day*.

    The days' bounds widened by *max_shift* on each side, so a shift crossing
    a range edge pairs as it would in a longer report. Every event source (the
    local log, the central store) reads this one window.
    """
    start, end = range_bounds_utc(first_day, last_day, zone)
    return start - max_shift, end + max_shift


def _local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    # If midnight does not exist locally (a DST jump at 00:00), fold=0 gives
    # the instant just after the jump, which is the day's real start.
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def pair_shifts(events: Iterable[AttendanceEvent], max_shift: timedelta = DEFAULT_MAX_SHIFT) -> list[Shift]:
    """Turn check-in/check-out events into shifts, per person, by the rules in the module docstring."""
    by_person: dict[str, list[AttendanceEvent]] = defaultdict(list)
    for event in events:
        if event.event_type in ("check-in", "check-out"):
            by_person[event.person].append(event)
    # Arithmetic on UTC only: Python subtracts same-zone datetimes as wall clock,
    # which would be an hour off on DST days.
    shifts: list[Shift] = []
    for person, person_events in sorted(by_person.items()):
        person_events.sort(key=lambda e: e.timestamp_utc)
        open_start: datetime | None = None
        done: list[Shift] = []
        for event in person_events:
            t = event.timestamp_utc.astimezone(UTC)
            if event.event_type == "check-in":
                if open_start is not None and t - open_start <= max_shift:
                    continue  # duplicate check-in
                if open_start is not None:
                    done.append(Shift(person, open_start, None))
                open_start = t
            else:  # check-out
                if open_start is not None and t - open_start <= max_shift:
                    done.append(Shift(person, open_start, t))
                    open_start = None
                    continue
                if open_start is not None:  # stale open shift, this check-out is not its end
                    done.append(Shift(person, open_start, None))
                    open_start = None
                previous = done[-1] if done else None
                if previous and previous.start and previous.end and t - previous.start <= max_shift:
                    done[-1] = Shift(person, previous.start, t)
                else:
                    done.append(Shift(person, None, t))
        if open_start is not None:
            done.append(Shift(person, open_start, None))
        shifts.extend(done)
    return shifts


def daily_rows(
    events: Iterable[AttendanceEvent],
    zone: ZoneInfo,
    first_day: date,
    last_day: date,
    expected_start: time | None = None,
    max_shift: timedelta = DEFAULT_MAX_SHIFT,
) -> list[DayRow]:
    """Per-person, per-local-day rows for days *first_day* .. *last_day*, sorted by day then person.

    Pass events from ``max_shift`` before the range to ``max_shift`` after it,
    so shifts crossing the range edges pair correctly.
    """
    events = list(events)
    buckets: dict[tuple[str, date], list[Shift]] = defaultdict(list)
    for shift in pair_shifts(events, max_shift):
        anchor = shift.start or shift.end
        assert anchor is not None
        buckets[(shift.person, local_day(anchor, zone))].append(shift)

    rows: list[DayRow] = []
    for (person, day), shifts in buckets.items():
        if not first_day <= day <= last_day:
            continue
        starts = [s.start for s in shifts if s.start]
        ends = [s.end for s in shifts if s.end]
        closed = [s for s in shifts if s.start and s.end]
        first_in = min(starts).astimezone(zone) if starts else None
        rows.append(
            DayRow(
                person=person,
                day=day,
                first_in=first_in,
                last_out=max(ends).astimezone(zone) if ends else None,
                hours=hours(sum(((s.end - s.start) for s in closed), timedelta())),  # type: ignore[operator]
                shifts=len(closed),
                open=any(s.start and not s.end for s in shifts),
                late_minutes=late_minutes(first_in, day, zone, expected_start),
                basis="check-in",
            )
        )

    # Sightings-only person-days.
    covered = {(row.person, row.day) for row in rows} | set(buckets)
    seen: dict[tuple[str, date], list[datetime]] = defaultdict(list)
    for event in events:
        if event.event_type == "seen":
            key = (event.person, local_day(event.timestamp_utc, zone))
            if key not in covered and first_day <= key[1] <= last_day:
                seen[key].append(event.timestamp_utc.astimezone(UTC))
    for (person, day), moments in seen.items():
        first, last = min(moments), max(moments)
        rows.append(
            DayRow(
                person=person,
                day=day,
                first_in=first.astimezone(zone),
                last_out=last.astimezone(zone),
                hours=hours(last - first),
                shifts=0,
                open=False,
                late_minutes=late_minutes(first.astimezone(zone), day, zone, expected_start),
                basis="seen",
            )
        )
    rows.sort(key=lambda r: (r.day, r.person.casefold(), r.person))
    return rows


def late_minutes(first_in: datetime | None, day: date, zone: ZoneInfo, expected_start: time | None) -> int | None:
    """Whole minutes after the expected start (real elapsed time), or None if on time / not applicable."""
    if first_in is None or expected_start is None:
        return None
    expected = datetime.combine(day, expected_start, tzinfo=zone)
    # Compare as instants (UTC): same-zone aware subtraction is wall-clock in Python.
    delta = first_in.astimezone(UTC) - expected.astimezone(UTC)
    if delta <= timedelta(0):
        return None
    return max(1, int(delta.total_seconds() // 60))


def totals(rows: Iterable[DayRow]) -> list[PersonTotal]:
    """Hours and late days per person over a report's rows."""
    acc: dict[str, list[DayRow]] = defaultdict(list)
    for row in rows:
        acc[row.person].append(row)
    return [
        PersonTotal(
            person=person,
            days=len(person_rows),
            hours=round(sum(r.hours for r in person_rows), 2),
            late_days=sum(1 for r in person_rows if r.late),
            open_days=sum(1 for r in person_rows if r.open),
        )
        for person, person_rows in sorted(acc.items(), key=lambda kv: (kv[0].casefold(), kv[0]))
    ]


def hours(delta: timedelta) -> float:
    """Elapsed time as hours rounded to 2 places: the one rounding every report (local or central) uses."""
    return round(delta.total_seconds() / 3600, 2)
