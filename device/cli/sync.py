"""`clockface sync`: this terminal's attendance to the central PostgreSQL ([central] in the config).

The command is the edge: it reads the config and the environment (the systemd
credential, $NOTIFY_SOCKET), opens the attendance log, installs the signal
handlers and hands a built :class:`device.sync.agent.SyncAgent` the work.
`--status` and `--check-configured` never touch the network (nor import psycopg),
so scripts and the unit's ExecCondition= stay quick when the centre is away.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import click

from device.cli.context import config_of
from device.config import Config
from device.errors import ClockfaceCommand, CommandError
from device.sync.settings import CentralSettings
from device.sync.status import read_status, status_path
from logs.store import AttendanceStore, format_utc


def _target(settings: CentralSettings) -> Any:
    """The CentralTarget [central] describes, with the credential systemd loaded when there is one."""
    from logs.central.connect import CentralTarget

    return CentralTarget(
        host=settings.host,
        port=settings.port,
        database=settings.database,
        user=settings.user,
        sslmode=settings.sslmode,
        sslrootcert=settings.sslrootcert,
        passfile=settings.credentials_file(os.environ),
    )


def _live_backlog(config: Config) -> int | None:
    """Events not yet confirmed, read from the log itself (read-only); None when there is no log yet."""
    if not config.paths.attendance.exists():
        return None
    with AttendanceStore(config.paths.attendance, readonly=True) as store:
        return store.backlog()


def _print_status(config: Config, as_json: bool) -> None:
    saved = read_status(status_path(config.paths.data_dir))
    backlog = _live_backlog(config)
    if as_json:
        doc = {
            "configured": config.central.enabled,
            "central": f"{config.central.host}:{config.central.port}/{config.central.database}"
            if config.central.enabled
            else None,
            "backlog": backlog,
            "agent": saved.to_dict() if saved is not None else None,
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    if config.central.enabled:
        click.echo(
            f"central:  {config.central.user}@{config.central.host}:{config.central.port}/{config.central.database}"
        )
    else:
        click.echo("central:  not configured ([central] host is unset): this terminal keeps its log to itself")
    click.echo(f"backlog:  {backlog if backlog is not None else 'no attendance log yet'}")
    if saved is None:
        click.echo("agent:    has not run yet")
        return
    click.echo(f"agent:    {saved.line()}")
    click.echo(f"          (as of {format_utc(saved.updated_utc)[:19]}Z)")


@click.command(cls=ClockfaceCommand)
@click.option("--once", is_flag=True, help="Push the whole backlog now, print how many events went, and exit.")
@click.option("--status", "show_status", is_flag=True, help="Print the agent's last status and the live backlog.")
@click.option("--json", "as_json", is_flag=True, help="With --status: print it as JSON, for scripts.")
@click.option(
    "--check-configured",
    is_flag=True,
    help="Exit 0 when [central] host is set, 1 otherwise (the unit's ExecCondition=).",
)
@click.pass_context
def sync(ctx: click.Context, once: bool, show_status: bool, as_json: bool, check_configured: bool) -> None:
    """Push attendance to the central server and take the gallery from it.

    Without options it runs until stopped (clockface-sync.service): every
    [central] interval_s it applies the centre's new erasure requests to the
    local log, pulls a new gallery version, then pushes the events the centre
    has not confirmed, oldest first. A terminal with no network keeps logging;
    the backlog goes when the network is back.
    """
    config = config_of(ctx)
    if check_configured:
        ctx.exit(0 if config.central.enabled else 1)
    if show_status:
        _print_status(config, as_json)
        return
    if as_json:
        raise CommandError("--json goes with --status")
    if not config.central.enabled:
        where = config.source_file or "the config"
        raise CommandError(f"[central] host is not set in {where}: nothing to sync to (see docs/configuration.md)")
    _run_agent(config, once)


def _run_agent(config: Config, once: bool) -> None:
    from device.sync.agent import SyncAgent
    from device.sync.gallery_pull import gallery_puller
    from device.terminal.notify import Notifier

    with AttendanceStore(config.paths.attendance) as store:
        agent = SyncAgent(
            store,
            _target(config.central),
            status_path(config.paths.data_dir),
            batch_size=config.central.batch_size,
            interval_s=config.central.interval_s,
            notifier=Notifier.from_env(os.environ),
            pull=gallery_puller(config.paths.gallery, config.paths.model_path),
        )
        signal.signal(signal.SIGTERM, lambda *_: agent.stop())
        signal.signal(signal.SIGINT, lambda *_: agent.stop())
        if once:
            pushed = agent.push_once()
            click.echo(f"pushed {pushed} events; backlog {agent.status.backlog}")
            return
        agent.run()
