"""The `clockface` command line.

The config file is read once here (the edge) and handed to every command as
`ctx.obj`. Commands that need TensorFlow (conversion) live in converter/ and
are found through the `clockface.commands` entry-point group, so this module
never imports them: on a Pi without TensorFlow `clockface convert` explains
itself instead.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path

import click

from device import __version__
from device.config import Config, ConfigError, load_config


class PluginGroup(click.Group):
    """A click group that also lists commands registered by other packages."""

    def _plugins(self) -> dict:
        return {ep.name: ep for ep in entry_points(group="clockface.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        ep = self._plugins().get(name)
        if ep is None:
            return None
        try:
            return ep.load()
        except ImportError as exc:
            reason = f"`clockface {name}` is not available here ({exc})."

            @click.command(name, help=f"Not available here: {exc}", context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1, type=click.UNPROCESSED)
            def unavailable(args: tuple[str, ...]) -> None:
                raise click.ClickException(reason)

            return unavailable


@click.group(cls=PluginGroup)
@click.version_option(__version__, prog_name="clockface")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CLOCKFACE_CONFIG",
    help="TOML config file (default: ~/.config/clockface/clockface.toml, then /etc/clockface/clockface.toml).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """clockface: a face-recognition attendance terminal."""
    try:
        ctx.obj = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def config_of(ctx: click.Context) -> Config:
    return ctx.find_root().obj


def fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


# --- run --------------------------------------------------------------------
@main.command()
@click.option(
    "--source",
    help="camera:N, /dev/videoN, picamera2, a URL, a video file or an image folder (default: camera.source).",
)
@click.option("--max-frames", type=int, help="Stop after this many frames.")
@click.option("--json", "as_json", is_flag=True, help="Print each logged event as a JSON line.")
@click.pass_context
def run(ctx: click.Context, source: str | None, max_frames: int | None, as_json: bool) -> None:
    """Recognise people and log their attendance until stopped."""
    from device.terminal.notify import Notifier
    from device.terminal.service import run_terminal

    config = config_of(ctx)
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    zone = config.logs.zone

    def on_event(event) -> None:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "person": event.person,
                        "event_type": event.event_type,
                        "time": event.timestamp_utc.isoformat(),
                        "distance": event.distance,
                        "source": event.source,
                        "id": event.id,
                    }
                )
            )
        else:
            click.echo(
                f"{event.timestamp_utc.astimezone(zone):%Y-%m-%d %H:%M:%S} {event.event_type:8} {event.person} (distance {event.distance:.3f})"
            )
        sys.stdout.flush()

    try:
        outcome = run_terminal(
            config,
            source or config.camera.source,
            Notifier.from_env(os.environ),
            stop,
            reload,
            reload_config=lambda: load_config(config.source_file),
            on_event=on_event,
            on_message=lambda text: click.echo(f"clockface: {text}", err=True),
            max_frames=max_frames,
        )
    except Exception as exc:
        if isinstance(exc, click.ClickException):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "camera" in message and source is None:
            message += "; to try without a camera: clockface run --source VIDEO_OR_FOLDER, or clockface demo"
        raise click.ClickException(message) from None
    for error in outcome.errors:
        click.echo(f"clockface: error: {error}", err=True)
    fps = outcome.frames / outcome.seconds if outcome.seconds else 0.0
    click.echo(
        f"clockface: {outcome.frames} frames from {outcome.source} in {outcome.seconds:.1f} s ({fps:.1f} fps), "
        f"{len(outcome.logged)} logged, startup {outcome.startup_seconds:.2f} s",
        err=True,
    )
    if outcome.errors:
        sys.exit(1)


# --- eval -------------------------------------------------------------------
@main.command("eval")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threshold", type=float, help="Override the model's threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def eval_command(ctx: click.Context, folder: Path, threshold: float | None, as_json: bool) -> None:
    """Measure recognition accuracy on FOLDER/<person>/<photos> (../shared/notes/eval-protocol.md)."""
    from tqdm import tqdm

    from device.evaluate import evaluate, people_folders
    from device.terminal.assembly import SetupError, load_model

    config = config_of(ctx)
    try:
        model = load_model(config)
    except SetupError as exc:
        raise fail(exc) from None
    total = sum(len(files) for files in people_folders(folder).values())
    with tqdm(total=total, unit="photo", desc="eval", disable=None, file=sys.stderr) as bar:
        report = evaluate(
            folder,
            model.pipeline,
            model.card.metric,
            threshold if threshold is not None else model.threshold,
            config.enrol,
            progress=lambda _: bar.update(),
        )
    if as_json:
        click.echo(json.dumps({"model": model.card.name, **report.to_dict()}, indent=2))
        return
    g = report.genuine_outcomes
    lines = [
        f"model              {model.card.name} ({model.card.metric}, threshold {report.threshold:g})",
        f"people enrolled    {report.people_enrolled} (enrolment failures: {len(report.enrolment_failures)})",
        f"strangers          {report.strangers}",
        f"genuine probes     {report.genuine_probes}: {g['correct']} correct, {g['wrong']} wrong, {g['rejected']} rejected, {g['no face']} no face",
        f"true accept rate   {report.true_accept_rate:.3f}",
        f"impostor trials    {report.impostor_trials}, false accepts {report.false_accepts}",
        f"false accept rate  {report.false_accept_rate:.3f}",
        f"TAR at FAR<=1%     {report.tar_at_far_1pct:.3f} (threshold {'-' if report.best_threshold_far_1pct is None else f'{report.best_threshold_far_1pct:.3f}'})",
        f"seconds per image  {report.seconds_per_image:.3f}",
    ]
    for failure in report.enrolment_failures:
        lines.append(f"  enrolment failure: {failure}")
    click.echo("\n".join(lines))


# --- demo -------------------------------------------------------------------
@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo gallery and log go (default: a temporary folder).",
)
@click.pass_context
def demo(ctx: click.Context, data_dir: Path | None) -> None:
    """Run the real pipeline end to end on a photo shipped with scikit-image.

    No camera and no photos of your own needed: the astronaut photo is
    enrolled as "Eileen Collins", shown to the recogniser as a short synthetic
    clip, and the attendance it logged is printed.
    """
    from device.terminal.demo import DemoError, run_demo

    try:
        result = run_demo(config_of(ctx), data_dir)
    except DemoError as exc:
        raise fail(exc) from None
    for line in result.lines:
        click.echo(line)


# --- config -----------------------------------------------------------------
@main.group()
def config() -> None:
    """Show the effective configuration."""


@config.command("show")
@click.option("--key", help="Print one value, e.g. paths.data_dir.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def config_show(ctx: click.Context, key: str | None, as_json: bool) -> None:
    """Print the effective configuration (file values over documented defaults)."""
    cfg = config_of(ctx)
    tables = cfg.to_toml_dict()
    if key:
        section, _, name = key.partition(".")
        try:
            click.echo(tables[section][name])
        except KeyError:
            raise click.ClickException(f"no config key {key}") from None
        return
    if as_json:
        click.echo(json.dumps(tables, indent=2))
        return
    click.echo(f"# effective clockface config ({cfg.source_file or 'built-in defaults'})")
    for section, values in tables.items():
        click.echo(f"\n[{section}]")
        for name, value in values.items():
            click.echo(f"{name} = {json.dumps(value)}")


def _mount_groups() -> None:
    """Command groups that live with the packages they serve (logs; gallery when present)."""
    from device.cli.gallery import enroll, enroll_stick, gallery
    from device.cli.logs import logs, web

    main.add_command(logs)
    main.add_command(web)
    main.add_command(enroll)
    main.add_command(enroll_stick)
    main.add_command(gallery)


_mount_groups()

if __name__ == "__main__":  # pragma: no cover
    main()
