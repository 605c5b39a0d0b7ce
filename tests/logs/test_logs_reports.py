"""Report arithmetic as pure functions: first/last, hours, night shifts, DST days, lateness."""

from __future__ import annotations

from datetime import date, time, timedelta

from logs_helpers import LONDON, event, local, utc

from logs import reports


def rows_for(events, day: date, expected: time | None = None, zone=LONDON):
    return reports.daily_rows(events, zone, day, day, expected)


def test_first_in_last_out_and_hours() -> None:
    day = date(2026, 6, 3)
    events = [
        event("alice", "check-in", local("2026-06-03 08:55")),
        event("alice", "check-in", local("2026-06-03 08:57")),  # duplicate while open
        event("alice", "check-out", local("2026-06-03 12:00")),
        event("alice", "check-in", local("2026-06-03 13:00")),
        event("alice", "check-out", local("2026-06-03 17:30")),
        event("alice", "check-out", local("2026-06-03 17:45")),  # later check-out wins
        event("alice", "seen", local("2026-06-03 10:00")),  # sightings do not change hours
    ]
    [row] = rows_for(events, day, expected=time(9, 0))
    assert (row.first_in.strftime("%H:%M"), row.last_out.strftime("%H:%M")) == ("08:55", "17:45")
    assert row.hours == round((3 * 60 + 5 + 4 * 60 + 45) / 60, 2)  # 08:55-12:00 + 13:00-17:45
    assert row.shifts == 2 and not row.open and not row.late
    assert row.first_in.utcoffset() == timedelta(hours=1)  # shown in BST


def test_late_arrival() -> None:
    [row] = rows_for([event("bob", "check-in", local("2026-06-03 09:17"))], date(2026, 6, 3), expected=time(9, 0))
    assert row.late and row.late_minutes == 17
    assert row.open and row.hours == 0  # no check-out: flagged, never guessed


def test_night_shift_counts_on_the_day_it_started() -> None:
    events = [
        event("carol", "check-in", local("2026-06-03 22:00")),
        event("carol", "check-out", local("2026-06-04 06:15")),
    ]
    rows = reports.daily_rows(events, LONDON, date(2026, 6, 3), date(2026, 6, 4))
    assert [(r.day, r.hours) for r in rows] == [(date(2026, 6, 3), 8.25)]
    assert rows[0].last_out.date() == date(2026, 6, 4)


def test_local_day_not_utc_day() -> None:
    # 23:30 UTC on 1 June is 00:30 on 2 June in London.
    [row] = rows_for([event("dan", "check-in", utc("2026-06-01 23:30"))], date(2026, 6, 2))
    assert row.first_in.strftime("%H:%M") == "00:30"
    assert rows_for([event("dan", "check-in", utc("2026-06-01 23:30"))], date(2026, 6, 1)) == []


def test_dst_spring_forward_day_is_23_hours() -> None:
    day = date(2026, 3, 29)
    start, end = reports.day_bounds_utc(day, LONDON)
    assert (start, end) == (utc("2026-03-29 00:00"), utc("2026-03-29 23:00"))
    events = [
        event("erin", "check-in", local("2026-03-29 00:30")),  # GMT: 00:30 UTC
        event("erin", "check-out", local("2026-03-29 03:30")),  # BST: 02:30 UTC
    ]
    assert events[1].timestamp_utc == utc("2026-03-29 02:30")
    [row] = rows_for(events, day)
    assert row.hours == 2.0  # elapsed time, not the 3 hours the wall clock suggests
    assert (row.first_in.strftime("%H:%M %Z"), row.last_out.strftime("%H:%M %Z")) == ("00:30 GMT", "03:30 BST")


def test_dst_fall_back_day_is_25_hours() -> None:
    day = date(2026, 10, 25)
    start, end = reports.day_bounds_utc(day, LONDON)
    assert (start, end) == (utc("2026-10-24 23:00"), utc("2026-10-26 00:00"))
    events = [
        event("erin", "check-in", local("2026-10-25 00:30")),  # BST: 23:30 UTC the day before
        event("erin", "check-out", local("2026-10-25 03:30")),  # GMT: 03:30 UTC
    ]
    assert events[0].timestamp_utc == utc("2026-10-24 23:30")
    [row] = rows_for(events, day, expected=time(0, 0))
    assert row.day == day and row.hours == 4.0
    assert row.late_minutes == 30


def test_late_on_dst_day_uses_local_wall_time() -> None:
    [row] = rows_for([event("finn", "check-in", local("2026-03-29 08:10"))], date(2026, 3, 29), expected=time(8, 0))
    assert row.late_minutes == 10


def test_sightings_only_day() -> None:
    events = [event("gus", "seen", local("2026-06-03 10:00")), event("gus", "seen", local("2026-06-03 15:30"))]
    [row] = rows_for(events, date(2026, 6, 3))
    assert row.basis == "seen" and row.hours == 5.5 and row.shifts == 0


def test_stale_open_shift_is_not_closed_days_later() -> None:
    events = [
        event("hana", "check-in", local("2026-06-01 09:00")),
        event("hana", "check-out", local("2026-06-03 17:00")),
    ]
    rows = reports.daily_rows(events, LONDON, date(2026, 6, 1), date(2026, 6, 3))
    assert [(r.day, r.open, r.hours, r.first_in is None) for r in rows] == [
        (date(2026, 6, 1), True, 0.0, False),
        (date(2026, 6, 3), False, 0.0, True),
    ]


def test_totals() -> None:
    events = []
    for d in (1, 2, 3):
        events += [
            event("ivy", "check-in", local(f"2026-06-0{d} 09:0{d}")),
            event("ivy", "check-out", local(f"2026-06-0{d} 17:00")),
        ]
    rows = reports.daily_rows(events, LONDON, date(2026, 6, 1), date(2026, 6, 3), time(9, 1, 30))
    [total] = reports.totals(rows)
    assert (total.person, total.days, total.late_days) == ("ivy", 3, 2)
    assert total.hours == round(sum(r.hours for r in rows), 2)


def test_range_bounds_reject_reversed_range() -> None:
    import pytest

    with pytest.raises(ValueError, match="before"):
        reports.range_bounds_utc(date(2026, 6, 2), date(2026, 6, 1), LONDON)
