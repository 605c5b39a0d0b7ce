"""The `clockface` command line: one module per command group, the root group in :mod:`device.cli.main`."""

from device.cli.main import main

__all__ = ["main"]
