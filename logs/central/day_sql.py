"""The per-person, per-day report rows computed on the central server: logs/reports.py's rules in SQL.

Why a second copy of the rules: a day of a large fleet is 100,000 events, and
fetching them into Python to build an event object each took 1.5-4 s on the
project's 2-core machine, over the 1 s a day's report should take. Here the
server walks each person's check-ins and check-outs once (a PL/pgSQL loop,
the same state machine as :func:`logs.reports.pair_shifts`), groups the
shifts and sightings by local day and sends one row per person-day.

What stays in Python, so it exists once: the local midnights (zoneinfo's, sent
as a ``timestamptz[]``; the server never applies its own zone rules), lateness,
rounding of hours and the row order. tests/central/test_fleet_reports.py checks
that these rows equal :func:`logs.reports.daily_rows` over every event, on
random fleets in three zones around a DST change: change a rule in
logs/reports.py and that test says this file must follow.

The function lives in ``pg_temp`` (this session only, gone at disconnect), so
the central schema carries no copy of report rules and needs no migration
when they change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from logs import reports

if TYPE_CHECKING:
    import psycopg

# logs.reports.pair_shifts, step for step: `done` is the shifts so far, of which
# only the last (prev_*) can still change (a later check-out extends it), so
# each earlier one is returned as soon as a newer one is appended.
SHIFTS_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.clockface_shifts(
    window_start timestamptz, window_end timestamptz, max_shift interval, only_person text)
RETURNS TABLE (person text, shift_start timestamptz, shift_end timestamptz)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    r record;
    current text;
    open_start timestamptz;
    has_prev boolean := false;
    prev_start timestamptz;
    prev_end timestamptz;
BEGIN
    FOR r IN
        SELECT e.person AS who, e.event_type AS kind, e.timestamp_utc AS t
          FROM clockface.events AS e
         WHERE e.timestamp_utc >= window_start AND e.timestamp_utc < window_end
           AND e.event_type IN ('check-in', 'check-out')
           AND (only_person IS NULL OR e.person = only_person)
         ORDER BY e.person COLLATE "C", e.timestamp_utc, e.id  -- any order keeps a person together; "C" is the cheapest
    LOOP
        IF current IS DISTINCT FROM r.who THEN
            IF current IS NOT NULL THEN
                IF has_prev THEN
                    person := current; shift_start := prev_start; shift_end := prev_end; RETURN NEXT;
                END IF;
                IF open_start IS NOT NULL THEN
                    person := current; shift_start := open_start; shift_end := NULL; RETURN NEXT;
                END IF;
            END IF;
            current := r.who; open_start := NULL; has_prev := false;
        END IF;
        IF r.kind = 'check-in' THEN
            IF open_start IS NOT NULL AND r.t - open_start <= max_shift THEN
                CONTINUE;  -- a duplicate check-in
            END IF;
            IF open_start IS NOT NULL THEN  -- a stale open shift: append it
                IF has_prev THEN
                    person := current; shift_start := prev_start; shift_end := prev_end; RETURN NEXT;
                END IF;
                has_prev := true; prev_start := open_start; prev_end := NULL;
            END IF;
            open_start := r.t;
        ELSE
            IF open_start IS NOT NULL AND r.t - open_start <= max_shift THEN
                IF has_prev THEN
                    person := current; shift_start := prev_start; shift_end := prev_end; RETURN NEXT;
                END IF;
                has_prev := true; prev_start := open_start; prev_end := r.t;
                open_start := NULL;
                CONTINUE;
            END IF;
            IF open_start IS NOT NULL THEN  -- a stale open shift, not ended by this check-out
                IF has_prev THEN
                    person := current; shift_start := prev_start; shift_end := prev_end; RETURN NEXT;
                END IF;
                has_prev := true; prev_start := open_start; prev_end := NULL;
                open_start := NULL;
            END IF;
            IF has_prev AND prev_start IS NOT NULL AND prev_end IS NOT NULL AND r.t - prev_start <= max_shift THEN
                prev_end := r.t;  -- the last check-out wins
            ELSE
                IF has_prev THEN
                    person := current; shift_start := prev_start; shift_end := prev_end; RETURN NEXT;
                END IF;
                has_prev := true; prev_start := NULL; prev_end := r.t;
            END IF;
        END IF;
    END LOOP;
    IF current IS NOT NULL THEN
        IF has_prev THEN
            person := current; shift_start := prev_start; shift_end := prev_end; RETURN NEXT;
        END IF;
        IF open_start IS NOT NULL THEN
            person := current; shift_start := open_start; shift_end := NULL; RETURN NEXT;
        END IF;
    END IF;
END
$fn$
"""

# Day i (1-based) of the report is [midnights[i], midnights[i + 1]); width_bucket
# gives 0 before the first midnight and n + 1 after the last day.
DAY_ROWS_QUERY = """
WITH shifts AS (
    SELECT person, shift_start, shift_end,
           width_bucket(coalesce(shift_start, shift_end), %(midnights)s::timestamptz[]) AS day
      FROM pg_temp.clockface_shifts(%(start)s, %(end)s, %(max_shift)s, %(person)s::text)
), shift_days AS (
    SELECT person, day,
           min(shift_start) AS first_in,
           max(shift_end) AS last_out,
           coalesce(sum(shift_end - shift_start) FILTER (WHERE shift_start IS NOT NULL AND shift_end IS NOT NULL),
                    interval '0') AS closed,
           count(*) FILTER (WHERE shift_start IS NOT NULL AND shift_end IS NOT NULL) AS shifts,
           bool_or(shift_start IS NOT NULL AND shift_end IS NULL) AS open
      FROM shifts
     GROUP BY person, day
), seen_days AS MATERIALIZED (  -- hashed on its own: inlined, it was sorted (90,000 rows by name) for a merge join
    SELECT person, width_bucket(timestamp_utc, %(midnights)s::timestamptz[]) AS day,
           min(timestamp_utc) AS first_seen, max(timestamp_utc) AS last_seen
      FROM clockface.events
     WHERE timestamp_utc >= %(first)s AND timestamp_utc < %(last)s AND event_type = 'seen'{person_filter}
     GROUP BY 1, 2
)
SELECT 'check-in', person, day, first_in, last_out,
       (extract(epoch FROM closed) * 1000000)::bigint, shifts, open
  FROM shift_days
 WHERE day BETWEEN 1 AND %(days)s
UNION ALL
SELECT 'seen', s.person, s.day, s.first_seen, s.last_seen, NULL, 0, false
  FROM seen_days AS s
 WHERE s.day BETWEEN 1 AND %(days)s
   AND NOT EXISTS (SELECT 1 FROM shift_days AS d WHERE d.person = s.person AND d.day = s.day)
"""


@dataclass(frozen=True)
class _DayTotals:
    """One row of DAY_ROWS_QUERY, before the Python-side rules (lateness, rounding) are applied."""

    basis: str
    person: str
    day_index: int
    first: datetime | None
    last: datetime | None
    closed_us: int | None
    shifts: int
    open: bool


def day_rows(
    conn: psycopg.Connection[Any],
    zone: ZoneInfo,
    first_day: date,
    last_day: date,
    expected_start: time | None = None,
    person: str | None = None,
    max_shift: timedelta = reports.DEFAULT_MAX_SHIFT,
) -> list[reports.DayRow]:
    """:func:`logs.reports.daily_rows` of every central event in the window, computed by the server."""
    start, end = reports.fetch_window_utc(first_day, last_day, zone, max_shift)
    days = (last_day - first_day).days + 1
    midnights = [reports.day_bounds_utc(first_day + timedelta(days=i), zone)[0] for i in range(days + 1)]
    params = {
        "start": start,
        "end": end,
        "max_shift": max_shift,
        "person": person,
        "midnights": midnights,
        "first": midnights[0],
        "last": midnights[-1],
        "days": days,
    }
    with conn.transaction(), conn.cursor(binary=True) as cur:
        # Room to group a day of a large fleet in memory (the default 4 MB spills to disk).
        cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute(SHIFTS_FUNCTION)
        # The person filter only when there is one: a plain predicate the planner can estimate.
        cur.execute(
            DAY_ROWS_QUERY.format(person_filter=" AND person = %(person)s" if person is not None else ""), params
        )
        found = [_DayTotals(*row) for row in cur.fetchall()]
    rows = [_day_row(t, first_day, zone, expected_start) for t in found]
    rows.sort(key=lambda r: (r.day, r.person.casefold(), r.person))
    return rows


def _day_row(totals: _DayTotals, first_day: date, zone: ZoneInfo, expected_start: time | None) -> reports.DayRow:
    day = first_day + timedelta(days=totals.day_index - 1)
    first_in = totals.first.astimezone(zone) if totals.first else None
    last_out = totals.last.astimezone(zone) if totals.last else None
    if totals.basis == "seen":
        assert totals.first is not None and totals.last is not None
        hours = reports.hours(totals.last - totals.first)
    else:
        hours = reports.hours(timedelta(microseconds=totals.closed_us or 0))
    return reports.DayRow(
        person=totals.person,
        day=day,
        first_in=first_in,
        last_out=last_out,
        hours=hours,
        shifts=totals.shifts,
        open=bool(totals.open),
        late_minutes=reports.late_minutes(first_in, day, zone, expected_start),
        basis=totals.basis,
    )
