"""The `clockface` command line.

Commands that need TensorFlow (conversion) live in converter/ and are found
through the `clockface.commands` entry-point group, so this module never
imports them: on a Pi without TensorFlow `clockface convert` is simply absent
or explains itself.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from device import __version__


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
def main() -> None:
    """clockface: a face-recognition attendance terminal."""


if __name__ == "__main__":  # pragma: no cover
    main()
