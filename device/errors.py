"""One way to fail: every `clockface` command ends an error with one line on stderr.

`clockface: error: <what is wrong and what to do>`, exit code 1; click's own
usage errors keep their `Usage:` text and exit code 2. Why one place: a
terminal's journal, a USB-stick report and a person at a shell all read the
same line, and a Python traceback tells none of them what to do.

Errors the project raises on purpose (any exception class defined in its own
packages: ConfigError, StoreError, GalleryError, ModelCardError, SetupError,
DemoError, StickError, DownloadError, ...) and OSError carry a message written
for the user, so that message is the line. Anything else is a bug or a
surprise: the line names its type and says how to see the stack
(`clockface --traceback ...` or CLOCKFACE_DEBUG=1).

Commands get this by being built with :class:`ClockfaceCommand` /
:class:`ClockfaceGroup` (subcommands of a ClockfaceGroup are made with them
automatically), so no command catches exceptions itself.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping
from typing import Any

import click

PROJECT_PACKAGES = frozenset({"device", "gallery", "logs", "converter"})
DEBUG_ENV = "CLOCKFACE_DEBUG"
TRACEBACK_META = "clockface.traceback"
TRACEBACK_HINT = "(run with --traceback for the full stack)"


def one_line(exc: BaseException) -> str:
    """The first non-empty line of str(exc), or the type name when it says nothing.

    OSError is shown as `<file>: <reason>` rather than Python's `[Errno 2] ...`.
    """
    if isinstance(exc, OSError) and exc.strerror and type(exc).__str__ is OSError.__str__:
        return f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def is_user_error(exc: BaseException) -> bool:
    """True for errors raised on purpose with a message meant for the user.

    Decided by where the class (or one of its bases) is defined, so gallery/
    and logs/ need not import device/ to mark their errors.
    """
    if isinstance(exc, OSError):
        return True
    return any(cls.__module__.split(".")[0] in PROJECT_PACKAGES for cls in type(exc).__mro__)


def error_line(exc: BaseException) -> str:
    """What follows `clockface: error: ` for this exception."""
    if is_user_error(exc):
        return one_line(exc)
    text = one_line(exc)
    name = type(exc).__name__
    return f"{name}: {text} {TRACEBACK_HINT}" if text != name else f"{name} {TRACEBACK_HINT}"


class CommandError(click.ClickException):
    """A failed command, shown as `clockface: error: <message>` (exit code 1 unless given)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a ClassVar

    def show(self, file: Any = None) -> None:
        click.echo(f"clockface: error: {self.format_message()}", file=file, err=True)


def wants_traceback(ctx: click.Context | None, env: Mapping[str, str] = os.environ) -> bool:
    """`--traceback` on the root group, or CLOCKFACE_DEBUG=1 in the environment."""
    if env.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    return bool(ctx is not None and ctx.meta.get(TRACEBACK_META))


def _invoke_with_one_line_errors(invoke: Any, ctx: click.Context) -> Any:
    try:
        return invoke(ctx)
    except (click.exceptions.Exit, click.Abort, click.UsageError, CommandError):
        raise  # click's own control flow, and errors already turned into one line
    except click.ClickException as exc:  # a command's `raise click.ClickException(...)`
        raise CommandError(exc.format_message(), exc.exit_code) from None
    except Exception as exc:
        if wants_traceback(ctx):
            click.echo(traceback.format_exc().rstrip("\n"), err=True)
            raise click.exceptions.Exit(1) from None
        raise CommandError(error_line(exc)) from None


class ClockfaceCommand(click.Command):
    """A click command whose every exception ends as one `clockface: error:` line."""

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke_with_one_line_errors(super().invoke, ctx)


class ClockfaceGroup(click.Group):
    """A click group like ClockfaceCommand; its subcommands and subgroups are built the same way."""

    command_class = ClockfaceCommand
    group_class = type  # subgroups are ClockfaceGroups too

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke_with_one_line_errors(super().invoke, ctx)


def _set_traceback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[TRACEBACK_META] = True


traceback_option = click.option(
    "--traceback",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_set_traceback,
    help=f"On an error, print the full Python stack instead of one line (also: {DEBUG_ENV}=1).",
)
