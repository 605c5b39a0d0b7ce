"""The `clockface` root group: global options, logging, and where the commands come from.

The config file is read once here (the edge) and handed to every command as
`ctx.obj`. Each command group lives in its own module (run/demo, eval,
config, enroll/gallery, logs/web, central). Commands that need TensorFlow (conversion)
live in converter/ and are found through the `clockface.commands`
entry-point group, so this module never imports them: on a Pi without
TensorFlow `clockface convert` explains itself instead.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

import click

from device import __version__
from device.cli.log_setup import logging_configured
from device.config import load_config
from device.errors import ClockfaceGroup, CommandError, traceback_option


class PluginGroup(ClockfaceGroup):
    """The root group: also lists commands registered by other packages."""

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
                raise CommandError(reason)

            return unavailable


@click.group(cls=PluginGroup)
@click.version_option(__version__, prog_name="clockface")
@traceback_option
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
    ctx.with_resource(logging_configured(os.environ))
    ctx.obj = load_config(config_path)


def _mount_groups() -> None:
    """Each command group lives in its own module, beside the code it serves."""
    from device.cli.central import central
    from device.cli.config import config
    from device.cli.evaluate import eval_command
    from device.cli.gallery import enroll, enroll_stick, gallery
    from device.cli.logs import logs
    from device.cli.run import demo, run
    from device.cli.sync import sync
    from device.cli.web import web

    for command in (run, demo, eval_command, config, enroll, enroll_stick, gallery, logs, web, central, sync):
        main.add_command(command)


_mount_groups()

if __name__ == "__main__":  # pragma: no cover
    main()
