"""Fixtures for the fleet tests: a real PostgreSQL server, a clean central database, terminals.

- `pg` (session): one throwaway cluster (tests/central/pg.py) with database
  `clockface` created and migrated; `.admin_dsn`, `.host`, `.port`, `.restart()`,
  `.stop()`, `.start()`, `.data_dir`, `.tls`.
- `central` (function): `pg` again, after `clockface` was dropped (with every
  terminal role) and recreated and migrated: each test starts from nothing.
- `terminal(name)`: add_terminal + a passfile in tmp_path -> that terminal's CentralTarget.

Without PostgreSQL server binaries the tests skip with the reason, except in CI
(CI=true), where ./setup.sh installed them and a skip would hide that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from logs.central.connect import CentralTarget, connect
from logs.central.roles import add_terminal, write_passfile
from logs.central.schema import migrate
from tests.central.pg import DATABASE, PgServer, PgUnavailable, find_bin_dir
from tests.conftest import require, skip_unless_ci


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    require("psycopg", "pip install 'psycopg[binary]' (a clockface dependency)")
    try:
        server = PgServer(find_bin_dir())
    except PgUnavailable as exc:
        skip_unless_ci(str(exc))
    try:
        server.start()
        recreate_database(server)
        yield server
    finally:
        server.remove()


def recreate_database(server: PgServer) -> None:
    """Drop `clockface` and the terminal roles (they are cluster-wide), then create and migrate it."""
    with connect(server.maintenance_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'clockface\\_t\\_%' OR rolname = 'clockface_terminal'"
            " ORDER BY rolname = 'clockface_terminal'"
        ).fetchall()
        for (role,) in roles:
            conn.execute(f'DROP ROLE "{role}"')
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with connect(server.admin_dsn) as conn:
        migrate(conn)


@pytest.fixture
def central(pg: PgServer) -> PgServer:
    if not pg.running():
        pg.start()  # a test that stopped the server must not break the next one
    recreate_database(pg)
    return pg


@pytest.fixture
def terminal(central: PgServer, tmp_path: Path) -> Callable[..., CentralTarget]:
    """`terminal("front-gate")` -> the CentralTarget that terminal connects with (plain TCP)."""

    def make(name: str, **target: object) -> CentralTarget:
        with connect(central.admin_dsn) as conn:
            creds = add_terminal(conn, name)
        settings: dict = {"host": central.host, "port": central.port, "user": creds.role, "sslmode": "disable"}
        settings |= target
        settings["passfile"] = tmp_path / f"{name}.pgpass"
        made = CentralTarget(**settings)
        write_passfile(made.passfile, made, creds)
        return made

    return make
