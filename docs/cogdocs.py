"""Generators for the cog blocks in docs/*.md.

The docs quote the CLI's `--help`, the example config and the benchmark
results instead of copies typed by hand, so they cannot drift from the code:
`cog -r docs/*.md` rewrites them, and tests/test_docs.py fails while any is
stale. Everything here is deterministic (fixed terminal width, fixed HOME, no
clock) so the same checkout always renders the same text.

A cog block loads this module from the file's own folder, so it works from
any working directory:

    [[[cog
    import sys; from pathlib import Path; sys.path.insert(0, str(Path(cog.inFile).resolve().parent))
    import cogdocs; cogdocs.cli_reference()
    ]]]
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This checkout's packages, not whichever clockface the venv has installed.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import click  # noqa: E402

EXAMPLE_TOML = REPO / "device" / "clockface.example.toml"
# What the help text is rendered for: a plain 80-column terminal and a user
# called pi, whatever machine regenerates the docs.
WIDTH = 80
DOC_ENV = {"HOME": "/home/pi", "XDG_DATA_HOME": None, "XDG_CONFIG_HOME": None, "CLOCKFACE_CONFIG": None}


def _out(text: str) -> None:
    """Write to cog's output when running under cog, else to stdout (for trying a generator by hand)."""
    try:
        import cog  # type: ignore[import-not-found]

        cog.out(text)
    except (ImportError, AttributeError):
        sys.stdout.write(text)


@dataclass(frozen=True)
class CommandDoc:
    """One command of the CLI tree: its words after `clockface`, and the click object."""

    path: tuple[str, ...]
    command: click.Command

    @property
    def name(self) -> str:
        return " ".join(("clockface", *self.path))


def walk_commands(root: click.Command | None = None) -> Iterator[CommandDoc]:
    """Every command and group, depth first in the order `--help` lists them."""
    if root is None:
        from device.cli import main

        root = main

    def visit(command: click.Command, path: tuple[str, ...]) -> Iterator[CommandDoc]:
        yield CommandDoc(path, command)
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=path[-1] if path else "clockface")
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from visit(sub, (*path, name))

    yield from visit(root, ())


def help_text(path: tuple[str, ...]) -> str:
    """`clockface PATH --help` as a user sees it on an 80-column terminal."""
    from click.testing import CliRunner

    from device.cli import main

    result = CliRunner().invoke(
        main, [*path, "--help"], prog_name="clockface", env=DOC_ENV, terminal_width=WIDTH, max_content_width=WIDTH
    )
    if result.exit_code != 0:
        raise RuntimeError(f"clockface {' '.join(path)} --help failed: {result.output}")
    return result.output


def cli_reference() -> None:
    """A heading and the `--help` text of every command, groups and subcommands alike."""
    for doc in walk_commands():
        level = "#" * min(2 + max(len(doc.path) - 1, 0), 4)
        _out(f"\n{level} `{doc.name}`\n\n```\n{help_text(doc.path)}```\n")


def command_output(args: list[str], config: Path | None = EXAMPLE_TOML) -> None:
    """`clockface ARGS` (with the example config, so the output does not depend on this machine) in a block."""
    from click.testing import CliRunner

    from device.cli import main

    # Run with the absolute path (any working directory), show the one relative to the checkout.
    run = ["--config", str(config), *args] if config else args
    shown = ["--config", str(config.relative_to(REPO)), *args] if config else args
    result = CliRunner().invoke(main, run, prog_name="clockface", env=DOC_ENV, terminal_width=WIDTH)
    if result.exit_code != 0:
        raise RuntimeError(f"clockface {' '.join(shown)} failed: {result.output}")
    output = result.output.replace(str(REPO) + "/", "")
    _out(f"```\n$ clockface {' '.join(shown)}\n{output}```\n")


@dataclass(frozen=True)
class ConfigKey:
    """One documented key of the example config: `default` is None for keys that are unset by default."""

    section: str
    name: str
    default: str | None
    description: str


_SECTION = re.compile(r"^\[([a-z_]+)\]\s*$")
_KEY = re.compile(r"^(#\s*)?([a-z_]+)\s*=\s*(.+?)\s*$")


def config_keys(text: str) -> list[ConfigKey]:
    """The keys of the example config, each with the comment lines above it.

    Keys written commented out (`# threshold = 0.55`) are documented but unset
    by default; their value is the example, not a default. A comment is the
    description of the next key only: a blank line or a key ends it.
    """
    keys: list[ConfigKey] = []
    section = ""
    comment: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SECTION.match(line):
            section, comment = m.group(1), []
        elif section and (m := _KEY.match(line)):
            commented, name, value = m.groups()
            default = None if commented else value
            example = f" Example: `{value}`." if commented and value not in ('""', "''") else ""
            keys.append(ConfigKey(section, name, default, " ".join(comment) + example))
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        elif not line:
            comment = []
    return keys


def config_reference(path: Path = EXAMPLE_TOML) -> None:
    """One table per section of the example config: key, default, what it does."""
    current = None
    for key in config_keys(path.read_text(encoding="utf-8")):
        if key.section != current:
            current = key.section
            _out(f"\n### `[{current}]`\n\n| key | default | what it does |\n|---|---|---|\n")
        default = f"`{key.default}`" if key.default is not None else "unset"
        description = key.description.replace("|", "\\|")
        _out(f"| `{key.section}.{key.name}` | {default} | {description} |\n")


def include(relative: str) -> None:
    """The text of a file in the repository (a benchmark results table), as it is."""
    text = (REPO / relative).read_text(encoding="utf-8")
    _out(text if text.endswith("\n") else text + "\n")
