"""`clockface web`: the attendance log in a browser, read-only, behind a password.

The command group only resolves the database and settings (as `clockface logs`
does, through :func:`device.cli.logs.resolve`) and hands over to :mod:`logs.web`;
Datasette is imported only when serving, so `web set-password` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from device import paths
from device.cli.logs import db_option, resolve
from device.errors import ClockfaceGroup, CommandError
from logs.web_auth import PasswordSource

default_password_file = paths.web_password_file


@click.group(cls=ClockfaceGroup, invoke_without_command=True)
@db_option
@click.option("--host", help="Address to bind (default: [web] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: [web] port, 8001).")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Password hash file (default: next to the database).",
)
@click.pass_context
def web(
    ctx: click.Context,
    db: Path | None,
    timezone_name: str | None,
    host: str | None,
    port: int | None,
    password_file: Path | None,
) -> None:
    """Serve the attendance log read-only in Datasette, behind a password.

    Binds to 127.0.0.1 unless [web] allow_lan = true. Set the password first
    with `clockface web set-password`.
    """
    if ctx.invoked_subcommand is not None:
        ctx.meta["logs.web"] = {"db": db, "timezone_name": timezone_name, "password_file": password_file}
        return
    from logs import web as web_module  # Datasette is imported only when serving

    lctx = resolve(ctx, db, timezone_name)
    changes: dict[str, Any] = {}
    if host:
        changes["host"] = host
    if port:
        changes["port"] = port
    settings = lctx.settings.with_web(**changes) if changes else lctx.settings
    # A hash in the config wins; otherwise the file, which the server re-reads when it changes.
    target = password_file or default_password_file(lctx.db)
    if settings.web.password_hash:
        password = PasswordSource.from_hash(settings.web.password_hash)
    elif web_module.read_password_file(target):
        password = PasswordSource(path=target.absolute())
    else:
        raise CommandError("no web password set; run `clockface web set-password` (or set [web] password_hash) first")
    web_module.serve(lctx.db, settings, password)


@web.command("set-password")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The new password (prompted if omitted)."
)
@click.option(
    "--print", "print_only", is_flag=True, help="Only print the hash (for [web] password_hash), do not write a file."
)
@click.pass_context
def set_password(ctx: click.Context, password: str, print_only: bool) -> None:
    """Store a hash of the web view password (user name: admin)."""
    from logs.web import hash_password, write_password_file

    if len(password) < 8:
        raise CommandError("password must be at least 8 characters")
    hashed = hash_password(password)
    if print_only:
        click.echo(hashed)
        return
    options = ctx.meta.get("logs.web", {})
    lctx = resolve(ctx, options.get("db"), options.get("timezone_name"))
    target = options.get("password_file") or default_password_file(lctx.db)
    write_password_file(target, hashed)
    click.echo(f"Password hash written to {target} (log in as 'admin').")
    if lctx.settings.web.password_hash:
        click.echo(
            "Note: [web] password_hash is set in the config and takes precedence over this file; "
            "remove it there for this password to be used.",
            err=True,
        )
    else:
        click.echo("A running `clockface web` uses it at once; sessions of the old password are logged out.")
