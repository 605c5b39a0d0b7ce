"""`clockface config show`: the effective configuration, file values over documented defaults."""

from __future__ import annotations

import json

import click

from device.cli.context import config_of
from device.errors import ClockfaceGroup, CommandError


@click.group(cls=ClockfaceGroup)
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
            raise CommandError(f"no config key {key}") from None
        return
    if as_json:
        click.echo(json.dumps(tables, indent=2))
        return
    click.echo(f"# effective clockface config ({cfg.source_file or 'built-in defaults'})")
    for section, values in tables.items():
        click.echo(f"\n[{section}]")
        for name, value in values.items():
            click.echo(f"{name} = {json.dumps(value)}")
