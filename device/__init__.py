"""clockface device runtime: everything that runs on the terminal. Never imports TensorFlow or converter/."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _version() -> str:
    """The installed distribution's version (pyproject.toml is its one source).

    A source tree that was never pip-installed (a checkout on PYTHONPATH) reads
    the pyproject.toml beside the package instead, so `clockface --version`
    never shows a stale hard-coded number.
    """
    try:
        return version("clockface")
    except PackageNotFoundError:
        pass
    try:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"


__version__ = _version()
