"""How `clockface logs` shows attendance: an aligned table for people, JSON for programs, CSV for spreadsheets.

Pure formatting of report rows and events (plus :func:`emit`, which writes the
chosen form), kept apart from the commands so each listing has one shape in all
three forms: JSON and CSV share one dict per row.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

import click
from tabulate import tabulate

from logs import reports
from logs.csv_export import write_csv
from logs.store import AttendanceEvent


def _hhmm(moment: datetime | None, day: date | None = None) -> str:
    if moment is None:
        return "-"
    text = moment.strftime("%H:%M")
    if day is not None and moment.date() != day:
        text += f" (+{(moment.date() - day).days})" if moment.date() > day else f" ({(moment.date() - day).days})"
    return text


def iso_time(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def day_row_dict(row: reports.DayRow) -> dict[str, Any]:
    """The machine form of a report row (JSON and CSV share it)."""
    return {
        "date": row.day.isoformat(),
        "person": row.person,
        "first_in": iso_time(row.first_in),
        "last_out": iso_time(row.last_out),
        "hours": row.hours,
        "shifts": row.shifts,
        "open": row.open,
        "late": row.late,
        "late_minutes": row.late_minutes,
        "basis": row.basis,
    }


def total_dict(total: reports.PersonTotal) -> dict[str, Any]:
    return {
        "person": total.person,
        "days": total.days,
        "hours": total.hours,
        "late_days": total.late_days,
        "open_days": total.open_days,
    }


def event_dict(event: AttendanceEvent, zone: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "person": event.person,
        "event_type": event.event_type,
        "timestamp_utc": event.timestamp_utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "local_time": iso_time(event.timestamp_utc.astimezone(zone)),
        "utc_offset_minutes": event.utc_offset_minutes,
        "distance": event.distance,
        "source": event.source,
        "terminal_id": event.terminal_id,
    }


def _note(row: reports.DayRow) -> str:
    notes = []
    if row.open:
        notes.append("no check-out")
    if row.basis == "seen":
        notes.append("sightings only")
    return ", ".join(notes)


def day_table(rows: Sequence[reports.DayRow], with_date: bool) -> str:
    headers = (["date"] if with_date else []) + ["person", "in", "out", "hours", "late", "note"]
    body = [
        ([row.day.isoformat()] if with_date else [])
        + [
            row.person,
            _hhmm(row.first_in, row.day),
            _hhmm(row.last_out, row.day),
            f"{row.hours:.2f}",
            f"+{row.late_minutes} min" if row.late_minutes else "",
            _note(row),
        ]
        for row in rows
    ]
    return tabulate(body, headers=headers, tablefmt="simple", disable_numparse=True)


def emit(records: list[dict[str, Any]], as_json: bool, csv_file: str | None, human: Callable[[], str]) -> None:
    """Write records as CSV and/or JSON, or the human table when neither was asked for."""
    if csv_file:
        columns = list(records[0]) if records else []
        if csv_file == "-":
            _write_csv(sys.stdout, records, columns)
        else:
            with open(csv_file, "w", newline="", encoding="utf-8") as fh:
                _write_csv(fh, records, columns)
            if not as_json:
                click.echo(f"Wrote {len(records)} rows to {csv_file}", err=True)
    if as_json:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
    elif not csv_file:
        click.echo(human())


def _write_csv(fh: Any, records: Iterable[dict[str, Any]], columns: list[str]) -> None:
    # Blank for None, true/false like JSON, and names that look like formulas kept inert.
    write_csv(fh, columns, records)
