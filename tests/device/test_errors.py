"""One way to fail (device/errors.py): every command ends an error as one `clockface: error:` line."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from device.cli.main import main
from device.config import ConfigError
from device.errors import ClockfaceCommand, ClockfaceGroup, error_line, one_line
from gallery.store import GalleryError
from logs.store import StoreError


def test_one_line_takes_the_first_line_or_the_type_name():
    assert one_line(ValueError("first\nsecond")) == "first"
    assert one_line(ValueError("\n  \nreal reason\n")) == "real reason"
    assert one_line(KeyError()) == "KeyError"


def test_os_errors_read_as_file_and_reason():
    assert (
        one_line(FileNotFoundError(2, "No such file or directory", "/x/y.db")) == "/x/y.db: No such file or directory"
    )
    assert one_line(PermissionError(13, "Permission denied")) == "Permission denied"


@pytest.mark.parametrize("exc", [ConfigError("bad key"), StoreError("bad key"), GalleryError("bad key")])
def test_the_projects_own_errors_print_their_message(exc):
    assert error_line(exc) == "bad key"


def test_an_unexpected_error_names_its_type_and_how_to_see_the_stack():
    assert error_line(ZeroDivisionError("division by zero")) == (
        "ZeroDivisionError: division by zero (run with --traceback for the full stack)"
    )


def _group_with(callback) -> click.Group:
    @click.group(cls=ClockfaceGroup)
    def root() -> None:
        pass

    root.command("boom")(callback)
    return root


def test_a_command_that_raises_prints_one_line_and_exits_1(monkeypatch):
    monkeypatch.delenv("CLOCKFACE_DEBUG", raising=False)
    result = CliRunner().invoke(_group_with(lambda: 1 / 0), ["boom"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "clockface: error: ZeroDivisionError: division by zero (run with --traceback for the full stack)\n"
    )
    assert result.stdout == ""


def test_click_exceptions_become_the_same_line_and_usage_errors_keep_exit_2(monkeypatch):
    def refuse() -> None:
        raise click.ClickException("no such thing")

    group = _group_with(refuse)
    assert CliRunner().invoke(group, ["boom"]).stderr == "clockface: error: no such thing\n"
    usage = CliRunner().invoke(group, ["boom", "--nope"])
    assert usage.exit_code == 2 and "No such option '--nope'" in usage.stderr


def test_clockface_debug_prints_the_stack(monkeypatch):
    monkeypatch.setenv("CLOCKFACE_DEBUG", "1")
    result = CliRunner().invoke(_group_with(lambda: 1 / 0), ["boom"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


def test_root_traceback_option_prints_the_stack_of_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CLOCKFACE_DEBUG", raising=False)
    bad = tmp_path / "clockface.toml"
    bad.write_text("[paths]\nno_such_key = 1\n")
    plain = CliRunner().invoke(main, ["--config", str(bad), "config", "show"])
    assert plain.exit_code == 1 and plain.stderr.startswith("clockface: error: ") and plain.stderr.count("\n") == 1
    traced = CliRunner().invoke(main, ["--traceback", "--config", str(bad), "config", "show"])
    assert traced.exit_code == 1 and "Traceback (most recent call last):" in traced.stderr
    assert "ConfigError" in traced.stderr


def _commands(command: click.Command, ctx: click.Context):
    yield command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            yield from _commands(command.get_command(ctx, name), ctx)


def test_every_command_fails_the_same_way():
    """Guards against a new command built with plain click.command (it would print a traceback)."""
    ctx = click.Context(main)
    plain = [c.name for c in _commands(main, ctx) if not isinstance(c, ClockfaceCommand | ClockfaceGroup)]
    assert plain == []
