"""The central schema against a real PostgreSQL: versioned, idempotent, one transaction per version."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from device.cli import main
from logs.central import schema
from logs.central.connect import CentralError, connect
from logs.central.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from tests.central.pg import PgServer

FRESH = "clockface_fresh"


@pytest.fixture
def fresh(pg: PgServer) -> Iterator[str]:
    """The DSN of an empty database beside `clockface` (dropped afterwards)."""
    with connect(pg.maintenance_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {FRESH} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {FRESH}")
    yield pg.dsn(database=FRESH)
    with connect(pg.maintenance_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {FRESH} WITH (FORCE)")


def versions(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT version FROM clockface.schema_migrations ORDER BY version")]


def test_migrate_creates_every_version_once_and_is_idempotent(fresh: str) -> None:
    with connect(fresh) as conn:
        assert schema_version(conn) == 0
        assert migrate(conn) == list(range(1, SCHEMA_VERSION + 1))
        assert migrate(conn) == []
        assert migrate(conn) == []
        assert versions(conn) == list(range(1, SCHEMA_VERSION + 1))
        assert schema_version(conn) == SCHEMA_VERSION
        audit = conn.execute("SELECT detail FROM clockface.audit_log WHERE action = 'migrate' ORDER BY id").fetchall()
        assert [row[0] for row in audit] == [{"from": v - 1, "to": v} for v in range(1, SCHEMA_VERSION + 1)]
        tables = {
            r[0]
            for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'clockface'")
        }
    assert tables >= {
        "schema_migrations",
        "terminals",
        "people",
        "gallery_versions",
        "gallery_templates",
        "events",
        "audit_log",
        "current_gallery_version",
        "current_gallery_templates",
        "erasures",
        "erasure_requests",
    }


def test_an_older_database_is_taken_up_one_version_at_a_time(fresh: str) -> None:
    """A database at v1 (an older clockface made it) gets only the versions after 1."""
    with connect(fresh) as conn:
        conn.execute(schema._BOOTSTRAP)
        conn.execute(MIGRATIONS[1])
        conn.execute("INSERT INTO clockface.schema_migrations (version) VALUES (1)")
        conn.commit()
        assert schema_version(conn) == 1
        assert migrate(conn) == list(range(2, SCHEMA_VERSION + 1))
        assert versions(conn) == list(range(1, SCHEMA_VERSION + 1))


def test_a_failing_version_leaves_the_database_at_the_previous_one(fresh: str, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = SCHEMA_VERSION + 1
    monkeypatch.setitem(MIGRATIONS, broken, "CREATE TABLE clockface.half_done (x int); SELECT 1 / 0;")
    monkeypatch.setattr(schema, "SCHEMA_VERSION", broken)
    with connect(fresh) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            migrate(conn)
        assert versions(conn) == list(range(1, SCHEMA_VERSION + 1))
        assert conn.execute("SELECT to_regclass('clockface.half_done')").fetchone() == (None,)


def test_a_newer_schema_is_refused_unchanged_with_one_line(fresh: str) -> None:
    with connect(fresh) as conn:
        migrate(conn)
        conn.execute("INSERT INTO clockface.schema_migrations (version) VALUES (%s)", (SCHEMA_VERSION + 7,))
        conn.commit()
        with pytest.raises(CentralError) as raised:
            migrate(conn)
        assert versions(conn) == [*range(1, SCHEMA_VERSION + 1), SCHEMA_VERSION + 7]
    message = str(raised.value)
    assert "\n" not in message
    assert f"v{SCHEMA_VERSION + 7}" in message and "upgrade clockface" in message

    result = CliRunner().invoke(main, ["central", "init", "--dsn", fresh])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == f"clockface: error: {message}"


def test_cli_init_creates_then_reports_current(fresh: str) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["central", "init", "--json"], env={"CLOCKFACE_CENTRAL_DSN": fresh})
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["applied"] == list(range(1, SCHEMA_VERSION + 1))
    assert json.loads(first.stdout)["version"] == SCHEMA_VERSION
    assert "warning" not in first.stderr  # the DSN came from the environment, not argv

    again = runner.invoke(main, ["central", "init", "--dsn", fresh])
    assert again.exit_code == 0, again.output
    assert f"central schema at v{SCHEMA_VERSION}" in again.stdout and "already current" in again.stdout
    # The test DSN carries its password: on the command line that is warned about.
    assert "--dsn holds a password" in again.stderr and "PGPASSFILE" in again.stderr
