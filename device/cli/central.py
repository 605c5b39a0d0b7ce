"""`clockface central`: set up the central PostgreSQL of a fleet, its terminals' logins, and its gallery.

Run by an admin, on the central server or a workstation, with an admin DSN
(`--dsn` or CLOCKFACE_CENTRAL_DSN). The DSN's password belongs in a passfile
(PGPASSFILE) rather than argv, where `ps` and the shell history see it: one
given there still works, with a warning. The code lives in logs/central/;
this module only reads options and prints. psycopg is imported by the commands,
never when `clockface` starts.

`enroll` and `remove` publish the gallery every terminal pulls
(gallery/central.py). Enrolment is the same code path as `clockface enroll`:
the central version is copied into a private temporary gallery, the folder is
enrolled into that copy with the same rules, progress bar and report, and
what changed is published as a new version. So a folder means the same thing
on a stick, at a shell and for the fleet.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from device.cli.context import config_of
from device.cli.gallery import emit_report, enrol_with_progress
from device.config import Config
from device.errors import ClockfaceGroup, CommandError, one_line
from gallery.report import EnrolmentReport, Status

if TYPE_CHECKING:
    import psycopg

DSN_ENV = "CLOCKFACE_CENTRAL_DSN"
TERMINAL_PASSFILE = Path("/etc/clockface/central.pgpass")
TERMINAL_CA_FILE = Path("/etc/clockface/central-ca.crt")

dsn_option = click.option(
    "--dsn",
    envvar=DSN_ENV,
    required=True,
    help=f"Admin connection to the central PostgreSQL (libpq DSN or URI; also {DSN_ENV}). Keep its password in PGPASSFILE, not here.",
)


def _admin_dsn(ctx: click.Context, dsn: str) -> str:
    """The DSN, after warning when its password came on the command line."""
    from logs.central.connect import dsn_has_password

    if ctx.get_parameter_source("dsn") == ParameterSource.COMMANDLINE and dsn_has_password(dsn):
        click.echo(
            "clockface: warning: the --dsn holds a password, which `ps` and the shell history can see; "
            "put it in a passfile (PGPASSFILE=~/.pgpass, mode 0600) instead",
            err=True,
        )
    return dsn


@click.group(cls=ClockfaceGroup)
def central() -> None:
    """Set up the central PostgreSQL that a fleet of terminals syncs to, and publish its gallery."""


@central.command("init")
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def init(ctx: click.Context, dsn: str, as_json: bool) -> None:
    """Create the central schema, or migrate it to this clockface's version.

    Safe to run again: versions already applied are skipped; a schema newer
    than this clockface is refused unchanged.
    """
    from logs.central.connect import CentralTarget, connect
    from logs.central.schema import SCHEMA_VERSION, migrate

    dsn = _admin_dsn(ctx, dsn)
    with connect(dsn) as conn:
        applied = migrate(conn)
    where = CentralTarget.from_dsn(dsn).where()
    if as_json:
        click.echo(json.dumps({"server": where, "version": SCHEMA_VERSION, "applied": applied}))
    elif applied:
        click.echo(f"central schema at v{SCHEMA_VERSION} on {where} (applied {', '.join(f'v{v}' for v in applied)})")
    else:
        click.echo(f"central schema at v{SCHEMA_VERSION} on {where} (already current)")


@dataclass(frozen=True)
class TerminalSettings:
    """The `[central]` keys a terminal needs (its password is in the passfile, never here)."""

    host: str
    port: int
    database: str
    user: str
    passfile: str
    sslmode: str
    sslrootcert: str

    def toml(self) -> str:
        lines = ["[central]"]
        for key, value in self.__dict__.items():
            lines.append(f"{key} = {value}" if isinstance(value, int) else f"{key} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"


@central.command("add-terminal")
@click.argument("name")
@dsn_option
@click.option(
    "--passfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the terminal's passfile (default: ./NAME.pgpass); install it on the terminal as "
    f"{TERMINAL_PASSFILE}.",
)
@click.option(
    "--central-host",
    "--host",
    "central_host",
    help="The central server's name as the terminal reaches it (default: the DSN's host); with verify-full, "
    "the name in the server certificate.",
)
@click.option(
    "--sslmode",
    type=click.Choice(["verify-full", "verify-ca", "require", "disable"]),
    default="verify-full",
    show_default=True,
    help="The terminal's sslmode.",
)
@click.option("--rotate", is_flag=True, help="Give an existing terminal a new password (the old one stops working).")
@click.option("--show-password", is_flag=True, help="Also print the password (it is in the passfile anyway).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def add_terminal_command(
    ctx: click.Context,
    name: str,
    dsn: str,
    passfile: Path | None,
    central_host: str | None,
    sslmode: str,
    rotate: bool,
    show_password: bool,
    as_json: bool,
) -> None:
    """Create the PostgreSQL login of terminal NAME (or --rotate its password).

    The role may add events in its own name and read the current gallery,
    nothing else. Its random password goes to a passfile (mode 0600); the
    command prints the [central] lines for the terminal's clockface.toml.
    """
    from logs.central.connect import CentralTarget, connect
    from logs.central.roles import add_terminal, check_terminal_name, role_name, write_passfile

    dsn = _admin_dsn(ctx, dsn)
    check_terminal_name(name)
    admin = CentralTarget.from_dsn(dsn)
    host = central_host or admin.host
    if not host or host.startswith("/"):
        raise CommandError("the DSN names no TCP host the terminal could reach: pass --central-host HOST")
    target = CentralTarget(host=host, port=admin.port, database=admin.database, user=role_name(name), sslmode=sslmode)
    out = (passfile or Path(f"{name}.pgpass")).absolute()
    # The password exists only once the role is committed: make sure it can be written down first.
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK):
        raise CommandError(f"{out}: cannot write the passfile there ({parent} is not writable)")
    with connect(dsn) as conn:
        creds = add_terminal(conn, name, rotate=rotate)
    try:
        write_passfile(out, target, creds)
    except OSError as exc:
        raise CommandError(
            f"{out}: {exc.strerror}; the role's new password is lost, run again with --rotate to issue another"
        ) from None
    settings = TerminalSettings(
        host=host,
        port=admin.port,
        database=admin.database,
        user=creds.role,
        passfile=str(TERMINAL_PASSFILE),
        sslmode=sslmode,
        sslrootcert=str(TERMINAL_CA_FILE) if sslmode.startswith("verify") else "",
    )
    result: dict[str, Any] = {
        "terminal": name,
        "role": creds.role,
        "action": "rotated" if rotate else "created",
        "passfile": str(out),
        "central": settings.__dict__,
    }
    if show_password:
        result["password"] = creds.password
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"terminal {name}: role {creds.role} {result['action']}")
    click.echo(f"passfile: {out} (mode 0600): install it on the terminal as {TERMINAL_PASSFILE}, mode 0600")
    if settings.sslrootcert:
        click.echo(f"CA certificate: copy the central server's CA to the terminal as {TERMINAL_CA_FILE}")
    if show_password:
        click.echo(f"password: {creds.password}")
    click.echo("\nAdd to the terminal's clockface.toml:\n")
    click.echo(settings.toml(), nl=False)


# --- the gallery every terminal pulls ------------------------------------------------------
@contextmanager
def _admin(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit admin connection: each gallery change is its own short transaction,
    never one held open while photos are examined. Database errors become one line."""
    import psycopg

    from logs.central.connect import CentralError, connect

    conn = connect(dsn, autocommit=True)
    try:
        yield conn
    except psycopg.Error as exc:
        raise CentralError(f"central server: {' '.join(str(exc).split())}") from None
    finally:
        conn.close()


def _enrol_and_publish(
    conn: psycopg.Connection, config: Config, folder: Path, add: bool, check: bool, as_json: bool
) -> EnrolmentReport:
    """Enrol `folder` against the central version (in a private copy), then publish what changed."""
    import psycopg

    from gallery.central import current_gallery, publish_version
    from gallery.store import GalleryError, GalleryStore, write_gallery

    binding, templates, records = current_gallery(conn)
    with tempfile.TemporaryDirectory(prefix="clockface-central-") as tmp:  # mode 0700: templates are biometric
        staging = Path(tmp) / "gallery.db"
        if binding is not None:
            write_gallery(staging, binding, templates, people=records)
        report = enrol_with_progress(config, folder, add, write=not check, quiet_progress=as_json, gallery_path=staging)
        report.gallery = f"central {conn.info.host}:{conn.info.port}/{conn.info.dbname}"
        if not report.written:
            return report
        store = GalleryStore(staging)
        changed = {r.name for r in report.roster if r.status in (Status.ENROLLED, Status.UPDATED)}
        removed = {r.name for r in report.roster if r.status is Status.REMOVED}
        enrolled = store.binding()
        new = [t for t in store.templates(enrolled) if t.person in changed]
        try:
            published = publish_version(
                conn,
                enrolled,
                new,
                people=store.records(),
                replace_people=removed,
                note=f"clockface central enroll {folder.name} ({report.mode})",
            )
        except (GalleryError, psycopg.Error) as exc:
            report.written = False
            report.error = f"publishing failed, the central gallery is unchanged: {one_line(exc)}"
            return report
    report.notes.append(published.line())
    return report


@central.command("enroll")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@dsn_option
@click.option(
    "--add",
    is_flag=True,
    help="Only add or update the people in FOLDER; keep everyone else (default: FOLDER replaces the gallery).",
)
@click.option("--check", is_flag=True, help="Examine the photos and print the report, but publish nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def central_enroll(ctx: click.Context, folder: Path, dsn: str, add: bool, check: bool, as_json: bool) -> None:
    """Enrol everyone photographed in FOLDER into the central gallery, for every terminal.

    The same rules and report as `clockface enroll`, with this machine's
    configured model: the result is published as a new gallery version bound
    to that model's sha256, which terminals on the same model apply at their
    next poll (others refuse it and keep their gallery).
    """
    config = config_of(ctx)
    with _admin(_admin_dsn(ctx, dsn)) as conn:
        report = _enrol_and_publish(conn, config, folder, add, check, as_json)
    emit_report(report, as_json)
    if report.error:
        click.echo(f"clockface: error: {report.error}", err=True)
        ctx.exit(1)


@central.command("remove")
@click.argument("name")
@dsn_option
@click.option(
    "--with-logs",
    is_flag=True,
    help="Also erase this person's attendance events, at the centre and in every terminal's log.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def central_remove(ctx: click.Context, name: str, dsn: str, with_logs: bool, yes: bool) -> None:
    """Erase NAME everywhere: from every central gallery version, then from every terminal.

    Their templates are deleted from all versions (old ones too) and a new
    version without them is published; each terminal securely erases them
    from its gallery file at its next poll. With --with-logs their
    attendance events are deleted at the centre now and from every
    terminal's own log at its next sync, before it pushes anything.
    """
    from gallery.central import compact_after_erasure, remove_person_everywhere

    what = "face templates and attendance events" if with_logs else "face templates"
    if not yes:
        click.confirm(f"Erase {name}'s {what} on every terminal? This cannot be undone", abort=True)
    with _admin(_admin_dsn(ctx, dsn)) as conn:
        removed = remove_person_everywhere(conn, name, with_events=with_logs)
        compact_after_erasure(conn, with_events=with_logs)
    if removed.in_gallery:
        s = "s" if removed.templates != 1 else ""
        tail = (
            f"version {removed.version} published without them: terminals erase them at their next poll"
            if removed.version is not None
            else "no gallery version to republish"
        )
        click.echo(
            f"removed {removed.name} from the central gallery ({removed.templates} face template{s} erased "
            f"from {removed.versions} version{'s' if removed.versions != 1 else ''}); {tail}"
        )
    else:
        click.echo(f"{name} is not in the central gallery")
    if removed.events is not None:
        click.echo(
            f"erased {removed.events} central attendance event{'s' if removed.events != 1 else ''} of {removed.name}"
        )
    sys.stdout.flush()
