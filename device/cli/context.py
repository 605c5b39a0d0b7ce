"""The config every command works with: read once by the root group, found from any context."""

from __future__ import annotations

import click

from device.config import Config, load_config


def config_of(ctx: click.Context) -> Config:
    """The root group's config (`ctx.obj`); a command invoked on its own (tests, plugins) reads the default."""
    config = ctx.find_root().obj
    return config if isinstance(config, Config) else load_config(None)
