"""`clockface logs ...`: reviewing attendance from a shell (the web view is :mod:`device.cli.web`).

Modelled on sqlite-utils: every command takes ``--db``; every listing is an
aligned table for people, ``--json`` for programs and ``--csv FILE`` for
spreadsheets (``-`` is stdout). Times are shown in the configured zone.

The root CLI may put a config object in ``ctx.obj`` (with
``.paths.attendance_db`` and ``.logs``, a :class:`LogsSettings`); without one
the commands fall back to ``--db`` and default settings. That lookup lives in
:func:`resolve` and nowhere else.

``--central`` (today, report, tail) reads every terminal's events from the
fleet's PostgreSQL store instead (:mod:`logs.central.reports`); psycopg is
imported only then, so a terminal's ``clockface`` starts without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time as time_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from tabulate import tabulate

from device import paths
from device.cli.logs_output import day_row_dict, day_table, emit, event_dict, iso_time, total_dict
from device.errors import ClockfaceGroup
from logs import reports
from logs.csv_export import CsvWriter
from logs.retention import apply_retention, purge_before
from logs.settings import LogsSettings, SettingsError
from logs.store import AttendanceEvent, AttendanceStore

if TYPE_CHECKING:
    import psycopg

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class LogsContext:
    """Everything a logs command needs to know about where and how, resolved once."""

    db: Path
    settings: LogsSettings


def resolve(ctx: click.Context, db: Path | None, timezone_name: str | None = None) -> LogsContext:
    """The one place that decides which database and settings a command uses.

    Precedence: ``--db``/``--timezone`` flags, then the config object the root
    CLI left in ``ctx.obj``, then built-in defaults.
    """
    config = ctx.obj
    settings = getattr(config, "logs", None) if config is not None else None
    if not isinstance(settings, LogsSettings):
        settings = LogsSettings()
    if db is None:
        paths = getattr(config, "paths", None) if config is not None else None
        configured = getattr(paths, "attendance_db", None) if paths is not None else None
        db = Path(configured) if configured else default_db()
    if timezone_name:
        try:
            settings = LogsSettings(
                timezone=timezone_name,
                expected_start=settings.expected_start,
                retention_days=settings.retention_days,
                terminal_id=settings.terminal_id,
                web=settings.web,
            )
        except SettingsError as exc:
            raise click.BadParameter(str(exc), param_hint="--timezone") from exc
    return LogsContext(db=Path(db), settings=settings)


def default_db() -> Path:
    """Without a config object: the attendance database under the default data dir (device/paths.py)."""
    return paths.attendance_db(paths.data_dir(os.environ))


def db_option(fn: F) -> F:
    fn = click.option(
        "--timezone",
        "timezone_name",
        metavar="ZONE",
        help="IANA zone to show times in (default: [logs] timezone, else UTC).",
    )(fn)
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Attendance database (default: configured paths.attendance_db, else $XDG_DATA_HOME/clockface/attendance.db).",
    )(fn)


def central_options(fn: F) -> F:
    fn = click.option(
        "--dsn",
        envvar="CLOCKFACE_CENTRAL_DSN",
        metavar="DSN",
        help="The central database for --central (libpq DSN or URI; default: $CLOCKFACE_CENTRAL_DSN). "
        "Keep the password in a passfile, not here.",
    )(fn)
    return click.option(
        "--central",
        is_flag=True,
        help="Every terminal's events from the central PostgreSQL store instead of this terminal's log.",
    )(fn)


@contextlib.contextmanager
def central_connection(dsn: str | None) -> Iterator[psycopg.Connection[Any]]:
    """A read connection to the central store; its failures are CentralError lines (no password in them)."""
    if not dsn:
        raise click.UsageError("--central needs --dsn DSN or CLOCKFACE_CENTRAL_DSN")
    from logs.central.connect import connect  # psycopg only when asked for
    from logs.central.reports import reading

    with connect(dsn) as conn, reading(dsn):
        yield conn


def output_options(fn: F) -> F:
    fn = click.option("--json", "as_json", is_flag=True, help="Output JSON.")(fn)
    return click.option(
        "--csv",
        "csv_file",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="Write CSV to FILE ('-' for stdout).",
    )(fn)


def _load_rows(
    store: AttendanceStore, lctx: LogsContext, first: date, last: date, person: str | None
) -> list[reports.DayRow]:
    zone = lctx.settings.zone
    start, end = reports.fetch_window_utc(first, last, zone)
    events = store.events_between(start, end, person=person)
    return reports.daily_rows(events, zone, first, last, lctx.settings.expected_start)


def _load_central_rows(
    dsn: str | None, lctx: LogsContext, first: date, last: date, person: str | None
) -> list[reports.DayRow]:
    from logs.central import reports as central_reports

    with central_connection(dsn) as conn:
        return central_reports.daily_rows(
            conn, lctx.settings.zone, first, last, lctx.settings.expected_start, person=person
        )


def _open_readonly(lctx: LogsContext) -> AttendanceStore:
    return AttendanceStore(lctx.db, readonly=True)


DATE = click.DateTime(formats=["%Y-%m-%d"])


# --- commands ------------------------------------------------------------------


@click.group(cls=ClockfaceGroup)
def logs() -> None:
    """Review the attendance log: today, reports, tail, purge."""


@logs.command()
@db_option
@central_options
@output_options
@click.option("--date", "on_date", type=DATE, help="Show this local day instead of today (YYYY-MM-DD).")
@click.pass_context
def today(
    ctx: click.Context,
    db: Path | None,
    timezone_name: str | None,
    central: bool,
    dsn: str | None,
    as_json: bool,
    csv_file: str | None,
    on_date: datetime | None,
) -> None:
    """Who came in today, when they left, and who was late (with --central: at any terminal)."""
    lctx = resolve(ctx, db, timezone_name)
    day = on_date.date() if on_date else datetime.now(UTC).astimezone(lctx.settings.zone).date()
    rows: list[reports.DayRow] = []
    if central:
        rows = _load_central_rows(dsn, lctx, day, day, None)
    elif lctx.db.exists():  # a fresh install has no database yet: an empty day, and nothing created
        with _open_readonly(lctx) as store:
            rows = _load_rows(store, lctx, day, day, None)

    def human() -> str:
        expected = lctx.settings.expected_start
        heading = f"{day.isoformat()} ({lctx.settings.timezone})" + (
            f", expected start {expected:%H:%M}" if expected else ""
        )
        if not rows:
            return f"{heading}: nobody yet"
        late = sum(1 for r in rows if r.late)
        return f"{heading}: {len(rows)} present, {late} late\n\n{day_table(rows, with_date=False)}"

    emit([day_row_dict(r) for r in rows], as_json, csv_file, human)


@logs.command()
@db_option
@central_options
@output_options
@click.option("--from", "from_", type=DATE, required=True, help="First local day (YYYY-MM-DD).")
@click.option("--to", "to", type=DATE, help="Last local day, inclusive (default: same as --from).")
@click.option("--person", help="Only this person.")
@click.option("--totals", is_flag=True, help="One row per person (days, hours, late days) instead of per day.")
@click.pass_context
def report(
    ctx: click.Context,
    db: Path | None,
    timezone_name: str | None,
    central: bool,
    dsn: str | None,
    as_json: bool,
    csv_file: str | None,
    from_: datetime,
    to: datetime | None,
    person: str | None,
    totals: bool,
) -> None:
    """First-in / last-out, hours and lateness per person per day.

    Night shifts count on the day they started; DST days are 23 or 25 hours.
    With --central, over every terminal: in at one gate and out at another is one day.
    """
    lctx = resolve(ctx, db, timezone_name)
    first, last = from_.date(), (to or from_).date()
    if last < first:
        raise click.BadParameter(f"{last} is before --from {first}", param_hint="--to")
    if central:
        rows = _load_central_rows(dsn, lctx, first, last, person)
    else:
        with _open_readonly(lctx) as store:
            rows = _load_rows(store, lctx, first, last, person)
    person_totals = reports.totals(rows)

    def human() -> str:
        if not rows:
            return f"No attendance from {first} to {last} ({lctx.settings.timezone})."
        total_table = tabulate(
            [[t.person, t.days, f"{t.hours:.2f}", t.late_days, t.open_days] for t in person_totals],
            headers=["person", "days", "hours", "late days", "open days"],
            tablefmt="simple",
            disable_numparse=True,
        )
        if totals:
            return total_table
        return (
            f"{day_table(rows, with_date=True)}\n\nTotals {first} to {last} ({lctx.settings.timezone})\n\n{total_table}"
        )

    records = [total_dict(t) for t in person_totals] if totals else [day_row_dict(r) for r in rows]
    emit(records, as_json, csv_file, human)


@logs.command()
@db_option
@central_options
@click.option("-n", "--lines", default=10, show_default=True, help="How many recent events to show first.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they are recorded.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls with -f.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (newline-delimited).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout.")
@click.pass_context
def tail(
    ctx: click.Context,
    db: Path | None,
    timezone_name: str | None,
    central: bool,
    dsn: str | None,
    lines: int,
    follow: bool,
    interval: float,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Show the latest events; with -f, follow new ones (Ctrl-C to stop).

    Polls by rowid through a read-only connection, so it never blocks the recogniser.
    With --central, every terminal's events in the order the central store received them
    (terminal_id is the terminal that pushed each one).
    """
    lctx = resolve(ctx, db, timezone_name)
    zone = lctx.settings.zone
    csv_writer: CsvWriter | None = None

    def show(event: AttendanceEvent) -> None:
        nonlocal csv_writer
        record = event_dict(event, zone)
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        elif as_csv:
            if csv_writer is None:
                csv_writer = CsvWriter(sys.stdout, list(record))
                csv_writer.writeheader()
            csv_writer.writerow(record)
            sys.stdout.flush()
        else:
            local = event.timestamp_utc.astimezone(zone)
            click.echo(
                f"{local:%Y-%m-%d %H:%M:%S %Z}  {event.event_type:<9}  {event.person:<20}  "
                f"{event.distance:5.3f}  {event.source}  {event.terminal_id}"
            )

    if central:
        _tail_central(dsn, lines, follow, interval, show)
        return

    with _open_readonly(lctx) as store:

        def drain(after: int) -> int:
            for rowid, event in store.events_after(after):
                show(event)
                after = rowid
            return after

        cursor = drain(store.last_rowids(lines) if lines > 0 else store.max_rowid())
        while follow:
            try:
                time_module.sleep(interval)
                cursor = drain(cursor)
            except KeyboardInterrupt:
                break


def _tail_central(
    dsn: str | None, lines: int, follow: bool, interval: float, show: Callable[[AttendanceEvent], None]
) -> None:
    from logs.central.reports import CentralFollower

    with central_connection(dsn) as conn:
        follower = CentralFollower(conn)
        for event in follower.start(lines):
            show(event)
        while follow:
            try:
                time_module.sleep(interval)
                for event in follower.poll():
                    show(event)
            except KeyboardInterrupt:
                break


@logs.command()
@db_option
@click.option("--before", type=DATE, required=True, help="Remove events from local days before this date.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Output the result as JSON.")
@click.pass_context
def purge(
    ctx: click.Context, db: Path | None, timezone_name: str | None, before: datetime, yes: bool, as_json: bool
) -> None:
    """Remove events before a date (the manual form of retention; recorded in audit_log)."""
    lctx = resolve(ctx, db, timezone_name)
    day = before.date()
    with AttendanceStore(lctx.db) as store:
        cutoff, _ = reports.day_bounds_utc(day, lctx.settings.zone)
        count = store.count_before(cutoff)
        if count and not yes:
            click.confirm(
                f"Remove {count} events recorded before {day} ({lctx.settings.timezone}) from {lctx.db}?", abort=True
            )
        result = purge_before(store, day, lctx.settings.zone, reason="manual")
    if as_json:
        click.echo(
            json.dumps(
                {"before": day.isoformat(), "cutoff_utc": iso_time(result.cutoff_utc), "removed": result.removed}
            )
        )
    else:
        click.echo(f"Removed {result.removed} events before {day} ({lctx.settings.timezone}).")


@logs.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Output the result as JSON.")
@click.pass_context
def retain(ctx: click.Context, db: Path | None, timezone_name: str | None, as_json: bool) -> None:
    """Apply the configured retention (logs.retention_days); run daily by clockface-retention.timer."""
    lctx = resolve(ctx, db, timezone_name)
    with AttendanceStore(lctx.db) as store:
        result = apply_retention(store, lctx.settings)
    message: dict[str, object]
    if result is None:
        message = {"retention_days": None, "removed": 0}
        text = "logs.retention_days is not set: events are kept forever."
    else:
        message = {
            "retention_days": lctx.settings.retention_days,
            "before": result.before_day.isoformat(),
            "removed": result.removed,
        }
        text = (
            f"Removed {result.removed} events before {result.before_day} (keeping {lctx.settings.retention_days} days)."
        )
    click.echo(json.dumps(message) if as_json else text)


@logs.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Output the result as JSON.")
@click.option(
    "--head",
    "head_only",
    is_flag=True,
    help="Only print the current chain head (to write down or send off the device).",
)
@click.option(
    "--expect-head", metavar="HASH", help="Also check that a head written down earlier is still in the chain."
)
@click.pass_context
def verify(
    ctx: click.Context,
    db: Path | None,
    timezone_name: str | None,
    as_json: bool,
    head_only: bool,
    expect_head: str | None,
) -> None:
    """Check the tamper-evident hash chain and the append-only triggers; exit 1 if broken.

    Names the first broken link (event id, its time, what is wrong). Read-only.
    See docs/log-integrity.md for what this does and does not catch.
    """
    lctx = resolve(ctx, db, timezone_name)
    with _open_readonly(lctx) as store:
        if head_only:
            head = store.chain_head()
            click.echo(json.dumps({"head": head}) if as_json else head)
            return
        result = store.verify(expect_head=expect_head)
    first = result.first_broken
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "events": result.events,
                    "head": result.head,
                    "first_broken": first.to_dict() if first else None,
                    "problems": [p.to_dict() for p in result.problems],
                },
                indent=2,
            )
        )
    elif result.ok:
        click.echo(f"OK: {result.events} events, chain intact, triggers in place. Head {result.head}")
    else:
        click.echo(f"BROKEN: {first.line() if first else 'unknown'}")
        for problem in result.problems:
            if problem is not first:
                click.echo(f"  also {problem.line()}")
    if not result.ok:
        ctx.exit(1)


@logs.command()
@db_option
@click.argument("person")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def erase(ctx: click.Context, db: Path | None, timezone_name: str | None, person: str, yes: bool) -> None:
    """Remove every event of PERSON (an erasure request; recorded in audit_log)."""
    lctx = resolve(ctx, db, timezone_name)
    if not yes:
        click.confirm(f"Remove all attendance events of {person!r} from {lctx.db}?", abort=True)
    with AttendanceStore(lctx.db) as store:
        removed = store.erase_person(person)
    click.echo(f"Removed {removed} events of {person}.")
