"""`clockface run` (the terminal itself) and `clockface demo` (the same pipeline on a shipped photo)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from device.cli.context import config_of
from device.config import DoorSettings, load_config
from device.errors import ClockfaceCommand, one_line

if TYPE_CHECKING:
    from device.terminal.door import DoorSignals

NO_CAMERA_HINT = "to try without a camera: clockface run --source VIDEO_OR_FOLDER, or clockface demo"


def event_line(event, zone) -> str:
    return (
        f"{event.timestamp_utc.astimezone(zone):%Y-%m-%d %H:%M:%S} {event.event_type:8} {event.person} "
        f"(distance {event.distance:.3f})"
    )


def event_json(event) -> str:
    return json.dumps(
        {
            "person": event.person,
            "event_type": event.event_type,
            "time": event.timestamp_utc.isoformat(),
            "distance": event.distance,
            "source": event.source,
            "id": event.id,
        }
    )


def attach_door_outputs(settings: DoorSettings, door: DoorSignals, path: str | None = None) -> list[Callable[[], None]]:
    """Subscribe the chime and the GPIO lights that this machine has to *door*; return their close()s.

    Each one that cannot work here (no sound card, no gpiozero, no GPIO) says so in
    one info line and is left out: the terminal runs the same without it."""
    from device.terminal.chime import open_chime
    from device.terminal.gpio import LightPins, open_lights

    closers: list[Callable[[], None]] = []
    chime = open_chime(settings.chime, path)
    pins = LightPins(settings.green_led_pin, settings.red_led_pin, settings.buzzer_pin)
    lights = open_lights(pins, settings.light_seconds, settings.buzzer_seconds)
    for output in (chime, lights):
        if output is not None:
            door.subscribe(output)
            closers.append(output.close)
    return closers


@click.command(cls=ClockfaceCommand)
@click.option(
    "--source",
    help="camera:N, /dev/videoN, picamera2, a URL, a video file or an image folder (default: camera.source).",
)
@click.option("--max-frames", type=int, help="Stop after this many frames.")
@click.option("--json", "as_json", is_flag=True, help="Print each logged event as a JSON line.")
@click.pass_context
def run(ctx: click.Context, source: str | None, max_frames: int | None, as_json: bool) -> None:
    """Recognise people and log their attendance until stopped."""
    from device.camera.frames import SourceError
    from device.terminal.door import DoorSignals
    from device.terminal.notify import Notifier
    from device.terminal.service import run_terminal

    config = config_of(ctx)
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    zone = config.logs.zone

    def on_event(event) -> None:
        click.echo(event_json(event) if as_json else event_line(event, zone))
        sys.stdout.flush()

    door = DoorSignals()
    closers = attach_door_outputs(config.door, door)
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
            door=door,
        )
    except SourceError as exc:
        message = one_line(exc)
        if "camera" in message and source is None:
            raise SourceError(f"{message}; {NO_CAMERA_HINT}") from exc
        raise
    finally:
        for close in closers:
            close()
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


@click.command(cls=ClockfaceCommand)
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
    from device.terminal.demo import run_demo

    for line in run_demo(config_of(ctx), data_dir).lines:
        click.echo(line)
