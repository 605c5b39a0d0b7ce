"""`clockface enroll`, `clockface enroll-stick` and `clockface gallery ...`.

Who is enrolled, and how they get there: from a folder on the command line,
from a USB stick (run by the clockface-stick@.service unit when a stick is
plugged in), and the gallery's housekeeping (list, remove a person, export
the roster). The config arrives as `ctx.obj` (device/cli/main.py reads it once).

Why one module over 300 lines: it is one command group (enroll, enroll-stick, gallery list/remove/export); the enrolment work itself is in device/enrolment/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from device.cli.context import config_of
from device.config import Config
from device.errors import ClockfaceCommand, ClockfaceGroup, one_line
from gallery import stick as stick_mod
from gallery.report import EnrolmentReport, render_text, write_report
from logs.csv_export import write_csv


def emit_report(report: EnrolmentReport, as_json: bool) -> None:
    """Print an enrolment report as text or JSON (also `clockface central enroll`'s output)."""
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_text(report), nl=False)
    sys.stdout.flush()


def enrol_with_progress(
    config: Config,
    images_dir: Path,
    add: bool,
    write: bool,
    quiet_progress: bool = False,
    gallery_path: Path | None = None,
) -> EnrolmentReport:
    """Load the model and enrol `images_dir` with a progress bar; every failure becomes a report with `error`.

    Into the configured gallery, or `gallery_path` (`clockface central enroll`
    enrols into a private copy of the central version, then publishes it):
    one code path, so a folder follows the same rules wherever it goes.
    """
    from tqdm import tqdm

    from device.enrolment.folder import enrol_folder
    from device.terminal.assembly import load_model

    model = load_model(config)
    with tqdm(total=0, unit="photo", desc="enrol", disable=True if quiet_progress else None, file=sys.stderr) as bar:

        def on_photos(n: int) -> None:
            bar.total = n
            bar.refresh()

        return enrol_folder(
            images_dir,
            model,
            config.enrol,
            config.paths.gallery if gallery_path is None else gallery_path,
            add=add,
            write=write,
            progress=lambda _: bar.update(),
            on_photos=on_photos,
        )


def _failure_report(config: Config | None, images_dir: Path, add: bool, error: str) -> EnrolmentReport:
    from datetime import datetime

    return EnrolmentReport(
        when=datetime.now().astimezone(),
        source=str(images_dir),
        gallery=str(config.paths.gallery) if config else "",
        mode="add" if add else "replace",
        model=config.paths.model if config else "",
        metric="",
        threshold=None,
        written=False,
        error=error,
    )


# --- enroll -------------------------------------------------------------------
@click.command("enroll", cls=ClockfaceCommand)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--add",
    is_flag=True,
    help="Only add or update the people in FOLDER; keep everyone else (default: FOLDER replaces the gallery).",
)
@click.option("--check", is_flag=True, help="Examine the photos and print the report, but do not change the gallery.")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write clockface-report.txt and .csv into this folder.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def enroll(ctx: click.Context, folder: Path, add: bool, check: bool, report_dir: Path | None, as_json: bool) -> None:
    """Enrol everyone photographed in FOLDER.

    anna_smith.jpg is Anna Smith; anna_smith_2.jpg and anna_smith/*.jpg are more
    photos of her. An optional people.csv (name,employee_id) adds payroll IDs.
    The new gallery is built completely and swapped in at once: if anything
    fails, the old gallery stays in force.
    """
    report = enrol_with_progress(config_of(ctx), folder, add, write=not check, quiet_progress=False)
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        files, report.report_error = write_report(report_dir, report)
        report.report_files = [str(p) for p in files]
    emit_report(report, as_json)
    if report.error:
        click.echo(f"clockface: error: {report.error}", err=True)
        ctx.exit(1)


# --- enroll-stick ---------------------------------------------------------------
@click.command("enroll-stick", cls=ClockfaceCommand)
@click.option(
    "--mount-point",
    type=click.Path(path_type=Path),
    help="Where the stick is mounted (the clockface-stick unit passes it).",
)
@click.option(
    "--device", help="The stick's partition, e.g. /dev/sdb1: its mount point is looked up in /proc/self/mounts."
)
@click.option(
    "--wait",
    "wait_seconds",
    type=float,
    default=30.0,
    show_default=True,
    help="With --device: how long to wait for it to be mounted.",
)
@click.option(
    "--add", is_flag=True, help="Only add or update the people on the stick (default: the stick replaces the gallery)."
)
@click.option("--unmount", is_flag=True, help="Unmount the stick with systemd-umount afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def enroll_stick(
    ctx: click.Context,
    mount_point: Path | None,
    device: str | None,
    wait_seconds: float,
    add: bool,
    unmount: bool,
    as_json: bool,
) -> None:
    """Enrol from a mounted USB stick: its images/ (or clockface/images/) folder.

    Writes clockface-report.txt and clockface-report.csv onto the stick beside
    the photo folder (a read-only stick still enrols; the printed report says the
    report could not be written), prints the same report (to the journal when
    run by systemd) and, with --unmount, unmounts the stick. A stick without the
    folder is left alone.
    """
    where = stick_mod.resolve_mount_point(device, mount_point, wait_seconds)
    try:
        images_dir = stick_mod.find_images_dir(where)
    except stick_mod.StickError as exc:
        report = _failure_report(None, where, add, f"{exc}; nothing enrolled, the previous gallery stays in force")
        files, report.report_error = write_report(where, report)
        report.report_files = [str(p) for p in files]
        emit_report(report, as_json)
        if unmount:
            click.echo(f"clockface: {stick_mod.unmount(where)[1]}")
        click.echo(f"clockface: error: {report.error}", err=True)
        ctx.exit(1)
    if images_dir is None:
        click.echo(
            f"clockface: no images/ or clockface/images/ folder on {where}: not an enrolment stick, nothing done"
        )
        if unmount:
            click.echo(f"clockface: {stick_mod.unmount(where)[1]}")
        return
    config: Config | None = None
    try:
        config = config_of(ctx)
        report = enrol_with_progress(config, images_dir, add, write=True, quiet_progress=as_json)
    except Exception as exc:  # the stick must get a report whatever went wrong; the line says what
        reason = one_line(exc)
        report = _failure_report(
            config, images_dir, add, f"enrolment failed, the previous gallery stays in force: {reason}"
        )
    files, report.report_error = write_report(stick_mod.report_dir(images_dir), report)
    report.report_files = [str(p) for p in files]
    emit_report(report, as_json)
    if unmount:
        ok, message = stick_mod.unmount(where)
        click.echo(f"clockface: {message}", err=not ok)
    if report.error:
        click.echo(f"clockface: error: {report.error}", err=True)
        ctx.exit(1)


# --- gallery ----------------------------------------------------------------------
@click.group("gallery", cls=ClockfaceGroup)
def gallery() -> None:
    """Who is enrolled: list, remove a person, export the roster."""


def _store(config: Config):
    from gallery.store import GalleryStore

    return GalleryStore(config.paths.gallery)


def _configured_sha(config: Config) -> str | None:
    from device.vision.model_card import ModelCardError, load_card

    try:
        return load_card(config.paths.model_path).model_sha256
    except (ModelCardError, OSError):
        return None


@gallery.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def gallery_list(ctx: click.Context, as_json: bool) -> None:
    """Everyone enrolled: name, photos, when enrolled, employee ID, model."""
    config = config_of(ctx)
    store = _store(config)
    if not store.exists():
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"no gallery yet at {store.path}: enrol people with `clockface enroll DIR` or a USB stick")
        return
    people = store.people()
    binding = store.binding()
    configured = _configured_sha(config)
    rows = [
        {
            "name": p.name,
            "photos": p.photos,
            "enrolled_at": p.enrolled_at,
            "employee_id": p.employee_id,
            "model": binding.name,
            "model_sha256": binding.sha256,
        }
        for p in people
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    width = max([len("NAME")] + [len(r["name"]) for r in rows])
    click.echo(f"{'NAME':<{width}}  PHOTOS  ENROLLED                   EMPLOYEE ID")
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['photos']:>6}  {r['enrolled_at']:<25}  {r['employee_id'] or ''}".rstrip())
    state = ""
    if configured is not None:
        state = (
            " (the configured model)"
            if configured == binding.sha256
            else " - NOT the configured model: the terminal will refuse this gallery; re-enrol with `clockface enroll DIR`"
        )
    click.echo(f"{len(rows)} people, model {binding.name} (sha256 {binding.sha256[:12]}){state}")


@gallery.command("remove")
@click.argument("name")
@click.option("--with-logs", is_flag=True, help="Also erase this person's attendance events (an erasure request).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def gallery_remove(ctx: click.Context, name: str, with_logs: bool, yes: bool) -> None:
    """Remove NAME from the gallery, leaving no trace of their face templates.

    The gallery stores no photos or face crops, only templates; they are
    overwritten in the database file (SQLite secure_delete + VACUUM). With
    --with-logs, NAME's attendance events are erased as well.
    """
    from gallery.store import GalleryError, remove_person

    config = config_of(ctx)
    what = "face templates and attendance events" if with_logs else "face templates"
    if not yes:
        click.confirm(f"Erase {name}'s {what}? This cannot be undone", abort=True)
    removed_name = name
    in_gallery = False
    try:
        removed = remove_person(config.paths.gallery, name)
        removed_name, in_gallery = removed.name, True
        click.echo(
            f"removed {removed.name} from the gallery ({removed.templates} face template{'s' if removed.templates != 1 else ''} erased)"
        )
    except GalleryError as exc:
        if not with_logs:
            raise
        click.echo(f"{name} is not in the gallery ({exc})")
    if with_logs:
        path = config.paths.attendance
        if not path.exists():
            click.echo(f"no attendance database at {path}: no events to erase")
            return
        from logs.store import AttendanceStore

        with AttendanceStore(path) as store:
            count = store.erase_person(removed_name)
        click.echo(f"erased {count} attendance event{'s' if count != 1 else ''} of {removed_name}")
        if not in_gallery and count == 0:
            ctx.exit(1)


@gallery.command("export")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CSV here (default: standard output).",
)
@click.pass_context
def gallery_export(ctx: click.Context, output: Path | None) -> None:
    """The roster as CSV (name, employee_id, photos, enrolled_at, model): no biometric data."""
    config = config_of(ctx)
    store = _store(config)
    people = store.people() if store.exists() else []
    model = store.binding().name if store.exists() else ""
    fields = ["name", "employee_id", "photos", "enrolled_at", "model"]
    rows = [
        {
            "name": p.name,
            "employee_id": p.employee_id or "",
            "photos": p.photos,
            "enrolled_at": p.enrolled_at,
            "model": model,
        }
        for p in people
    ]
    # Names and ids came from sticks and people.csv: the shared writer keeps formulas inert.
    if output is None:
        write_csv(sys.stdout, fields, rows)
        return
    with open(output, "w", encoding="utf-8-sig", newline="") as fh:
        write_csv(fh, fields, rows, lineterminator="\r\n")
    click.echo(f"wrote {len(rows)} people to {output}", err=True)


COMMANDS = (enroll, enroll_stick, gallery)
