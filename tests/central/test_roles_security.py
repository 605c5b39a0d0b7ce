"""A terminal's role has least privilege, against a real PostgreSQL: each test tries what a stolen
terminal would try. Plus the one-line connection errors (password, TLS) and the passfile."""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql

from logs.central.connect import CentralError, CentralTarget, connect
from logs.central.roles import TerminalCredentials, add_terminal, pgpass_line, write_passfile
from tests.central.pg import PgServer

Terminal = Callable[..., CentralTarget]
PUSH = (
    "INSERT INTO clockface.events (id, person, event_type, timestamp_utc, utc_offset_minutes, distance, source)"
    " VALUES (%s, %s, 'check-in', now(), 60, 0.31, 'camera') ON CONFLICT (id) DO NOTHING"
)
TABLES = (
    "terminals",
    "people",
    "gallery_versions",
    "gallery_templates",
    "events",
    "audit_log",
    "schema_migrations",
    "erasures",
)
VIEWS = ("current_gallery_version", "current_gallery_templates", "erasure_requests")


def admin(server: PgServer) -> psycopg.Connection:
    return connect(server.admin_dsn, autocommit=True)


def events_by_terminal(server: PgServer) -> list[tuple[str, str]]:
    with admin(server) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT terminal, person FROM clockface.events ORDER BY person")]


def publish(conn: psycopg.Connection, people: dict[str, bytes]) -> int:
    """A gallery version (as H3's publisher would write it): its id."""
    row = conn.execute(
        "INSERT INTO clockface.gallery_versions (model_sha256, model_name, embedding_size) VALUES ('ab' , 'm', 2) RETURNING id"
    ).fetchone()
    assert row
    for name, embedding in people.items():
        conn.execute("INSERT INTO clockface.people (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))
        conn.execute(
            "INSERT INTO clockface.gallery_templates (version_id, person_id, photo, embedding)"
            " SELECT %s, id, 'a.jpg', %s FROM clockface.people WHERE name = %s",
            (row[0], embedding, name),
        )
    return int(row[0])


@pytest.fixture
def two_gates(central: PgServer, terminal: Terminal) -> tuple[CentralTarget, CentralTarget]:
    """front-gate and back-gate, each with one event pushed, and two gallery versions published."""
    front, back = terminal("front-gate"), terminal("back-gate")
    for target, person in ((front, "ada"), (back, "bob")):
        with connect(target) as conn:
            conn.execute(PUSH, (uuid.uuid4(), person))
            conn.commit()
    with admin(central) as conn:
        publish(conn, {"old-person": b"\x00" * 8})
        publish(conn, {"ada": b"\x01" * 8, "bob": b"\x02" * 8})
    return front, back


# --- what a terminal may do ---------------------------------------------------------------------
def test_a_terminal_pushes_its_own_events_idempotently(central: PgServer, terminal: Terminal) -> None:
    front = terminal("front-gate")
    ids = [uuid.uuid4() for _ in range(3)]
    with connect(front) as conn:
        assert conn.execute("SELECT clockface.current_terminal()").fetchone() == ("front-gate",)
        for _ in range(2):  # the same batch again: the gap between commit and local confirmation
            with conn.cursor() as cur:
                cur.executemany(PUSH, [(i, "ada") for i in ids])
            conn.commit()
    assert events_by_terminal(central) == [("front-gate", "ada")] * 3


def test_a_terminal_reads_only_the_current_gallery(two_gates: tuple[CentralTarget, CentralTarget]) -> None:
    front, _ = two_gates
    with connect(front) as conn:
        versions = conn.execute("SELECT version_id, model_sha256 FROM clockface.current_gallery_version").fetchall()
        people = conn.execute(
            "SELECT version_id, person FROM clockface.current_gallery_templates ORDER BY person"
        ).fetchall()
    assert len(versions) == 1
    newest = versions[0][0]
    assert people == [(newest, "ada"), (newest, "bob")]  # not old-person of the older version


def test_a_terminal_reads_erasure_requests_but_not_who_asked_when_and_cannot_write_them(
    central: PgServer, two_gates: tuple[CentralTarget, CentralTarget]
) -> None:
    front, _ = two_gates
    with admin(central) as conn:
        conn.execute("INSERT INTO clockface.erasures (person, with_logs) VALUES ('ada', true), ('bob', false)")
    with connect(front, autocommit=True) as conn:
        rows = conn.execute("SELECT * FROM clockface.erasure_requests ORDER BY id").fetchall()
        columns = [c.name for c in conn.execute("SELECT * FROM clockface.erasure_requests LIMIT 0").description or []]
        assert [(r[1], r[2]) for r in rows] == [("ada", True), ("bob", False)]
        assert columns == ["id", "person", "with_logs"]  # not requested_at
        for statement in (
            "INSERT INTO clockface.erasure_requests (person, with_logs) VALUES ('eve', true)",
            "INSERT INTO clockface.erasures (person, with_logs) VALUES ('eve', true)",
            "SELECT requested_at FROM clockface.erasures",
            "SELECT nextval('clockface.erasures_id_seq')",
            "SELECT clockface.skip_erased_event()",
        ):
            with pytest.raises((errors.InsufficientPrivilege, errors.FeatureNotSupported)):
                conn.execute(statement)
    with admin(central) as conn:
        assert conn.execute("SELECT count(*) FROM clockface.erasures").fetchone() == (2,)


# --- what it may not --------------------------------------------------------------------------------
def test_a_terminal_cannot_read_any_event_its_own_or_others(
    central: PgServer, two_gates: tuple[CentralTarget, CentralTarget]
) -> None:
    front, _ = two_gates
    assert len(events_by_terminal(central)) == 2
    with connect(front, autocommit=True) as conn:
        # id is readable only as ON CONFLICT's arbiter needs it: row-level security shows no committed row.
        assert conn.execute("SELECT id FROM clockface.events").fetchall() == []
        assert conn.execute("SELECT count(*) FROM clockface.events").fetchone() == (0,)
        for column in ("person", "terminal", "*"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(f"SELECT {column} FROM clockface.events")


def test_a_terminal_cannot_insert_in_another_terminals_name_or_set_the_server_time(
    central: PgServer, two_gates: tuple[CentralTarget, CentralTarget]
) -> None:
    front, _ = two_gates
    with connect(front, autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO clockface.events (id, terminal, person, event_type, timestamp_utc, utc_offset_minutes,"
                " distance, source) VALUES (%s, 'back-gate', 'eve', 'check-in', now(), 0, 0.1, 'camera')",
                (uuid.uuid4(),),
            )
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO clockface.events (id, person, event_type, timestamp_utc, utc_offset_minutes, distance,"
                " source, received_at) VALUES (%s, 'eve', 'check-in', now(), 0, 0.1, 'camera', now())",
                (uuid.uuid4(),),
            )
    assert ("back-gate", "eve") not in events_by_terminal(central)
    assert len(events_by_terminal(central)) == 2


@pytest.mark.parametrize("table", TABLES + VIEWS)
def test_a_terminal_cannot_update_delete_or_truncate(
    table: str, central: PgServer, two_gates: tuple[CentralTarget, CentralTarget]
) -> None:
    front, _ = two_gates
    with admin(central) as conn:
        column = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'clockface' AND table_name = %s"
            " ORDER BY ordinal_position LIMIT 1",
            (table,),
        ).fetchone()
    assert column
    name, col = sql.Identifier("clockface", table), sql.Identifier(column[0])
    attempts = [
        sql.SQL("UPDATE {t} SET {c} = {c}").format(t=name, c=col),
        sql.SQL("DELETE FROM {t}").format(t=name),
        sql.SQL("TRUNCATE {t}").format(t=name),
    ]
    # A view that is not updatable is refused for what it is before privileges are looked at,
    # so for views the privileges are also checked as such.
    view_errors = (errors.InsufficientPrivilege, errors.WrongObjectType, errors.ObjectNotInPrerequisiteState)
    refused = view_errors if table in VIEWS else errors.InsufficientPrivilege
    with admin(central) as conn:
        held = conn.execute(
            "SELECT p FROM unnest(array['UPDATE', 'DELETE', 'TRUNCATE']) p WHERE has_table_privilege(%s, %s, p)",
            (front.user, f"clockface.{table}"),
        ).fetchall()
    assert held == []
    with connect(front, autocommit=True) as conn:
        for attempt in attempts:
            with pytest.raises(refused):
                conn.execute(attempt)
    assert len(events_by_terminal(central)) == 2


@pytest.mark.parametrize("table", [t for t in TABLES if t != "events"])
def test_a_terminal_cannot_read_the_tables_behind_the_views(
    table: str, two_gates: tuple[CentralTarget, CentralTarget]
) -> None:
    front, _ = two_gates
    with connect(front, autocommit=True) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier("clockface", table)))


def test_a_terminal_cannot_see_password_hashes_or_become_another_role(
    central: PgServer, two_gates: tuple[CentralTarget, CentralTarget]
) -> None:
    front, _ = two_gates
    with connect(front, autocommit=True) as conn:
        for catalog in ("pg_authid", "pg_shadow"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM pg_catalog.{catalog}")
        hashes = conn.execute("SELECT DISTINCT rolpassword FROM pg_catalog.pg_roles WHERE rolpassword IS NOT NULL")
        assert {r[0] for r in hashes} <= {"********"}
        for other in ("clockface_t_back_gate", central.superuser):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(other)))


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE public.loot (x int)",
        "CREATE TABLE clockface.loot (x int)",
        "CREATE TEMP TABLE loot (x int)",
        "CREATE SCHEMA loot",
        "CREATE VIEW clockface.all_events AS SELECT 1",
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ],
)
def test_a_terminal_cannot_create_anything(statement: str, two_gates: tuple[CentralTarget, CentralTarget]) -> None:
    front, _ = two_gates
    with connect(front, autocommit=True) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_a_terminal_role_has_no_attributes_of_its_own(central: PgServer, terminal: Terminal) -> None:
    terminal("front-gate")
    with admin(central) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin"
            " FROM pg_roles WHERE rolname = 'clockface_t_front_gate'"
        ).fetchone()
        grants = conn.execute(
            "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = 'clockface_t_front_gate'"
        ).fetchone()
    assert row == (False, False, False, False, False, True)
    assert grants == (0,)  # everything it may do comes from clockface_terminal


# --- add_terminal and rotation ----------------------------------------------------------------------
def test_add_terminal_refuses_a_second_add_and_rotation_locks_the_old_password_out(
    central: PgServer, terminal: Terminal, tmp_path: Path
) -> None:
    front = terminal("front-gate")
    old_passfile = tmp_path / "old.pgpass"
    old_passfile.write_bytes(front.passfile.read_bytes())  # type: ignore[union-attr]
    old_passfile.chmod(0o600)
    with admin(central) as conn:
        with pytest.raises(CentralError, match="--rotate"):
            add_terminal(conn, "front-gate")
        with pytest.raises(CentralError, match="no terminal"):
            add_terminal(conn, "side-gate", rotate=True)
        creds = add_terminal(conn, "front-gate", rotate=True)
        audit = conn.execute(
            "SELECT action, detail::text FROM clockface.audit_log WHERE action LIKE '%terminal'"
        ).fetchall()
    assert [a for a, _ in audit] == ["add-terminal", "rotate-terminal"]
    assert all(creds.password not in detail for _, detail in audit)
    write_passfile(front.passfile, front, creds)  # type: ignore[arg-type]
    with connect(front) as conn:
        assert conn.execute("SELECT clockface.current_terminal()").fetchone() == ("front-gate",)
    with pytest.raises(CentralError, match="wrong password"):
        connect(dataclasses.replace(front, passfile=old_passfile))


def test_the_password_never_reaches_the_server_log_or_ours(central: PgServer, caplog: pytest.LogCaptureFixture) -> None:
    """The role gets a SCRAM verifier computed on our side: even log_statement=all shows no password."""
    caplog.set_level(logging.DEBUG)
    with admin(central) as conn:
        conn.execute("SET log_statement = 'all'")
        creds = add_terminal(conn, "front-gate")
    assert len(creds.password) >= 43  # 32 random bytes
    assert "CREATE ROLE" in central.server_log()  # the statement was logged...
    assert creds.password not in central.server_log()  # ...without the password
    assert creds.password not in caplog.text
    assert creds.password not in repr(creds)


def test_bad_terminal_names_are_refused(central: PgServer) -> None:
    with admin(central) as conn:
        for name in ("Front", "-x", "a b", "x" * 42, "gate\n", ""):
            with pytest.raises(CentralError, match="terminal name"):
                add_terminal(conn, name)
        add_terminal(conn, "a-b")
        with pytest.raises(CentralError, match="share role"):
            add_terminal(conn, "a_b")


# --- one-line connection errors ---------------------------------------------------------------------
def test_a_wrong_password_is_one_line_without_the_password(central: PgServer, terminal: Terminal) -> None:
    front = terminal("front-gate")
    wrong = TerminalCredentials(name="front-gate", role=front.user, password="not-the-password-Zq9")
    write_passfile(front.passfile, front, wrong)  # type: ignore[arg-type]
    with pytest.raises(CentralError) as raised:
        connect(front)
    message = str(raised.value)
    assert "\n" not in message
    assert "wrong password" in message and front.where() in message
    assert wrong.password not in message
    # An admin DSN with its password in it: the password is not echoed either.
    with pytest.raises(CentralError) as raised:
        connect(central.dsn(password="also-wrong-Xy7"))
    assert "wrong password" in str(raised.value) and "also-wrong-Xy7" not in str(raised.value)


def test_an_unreachable_server_is_one_line(central: PgServer, terminal: Terminal) -> None:
    front = terminal("front-gate")
    from tests.central.pg import free_port

    with pytest.raises(CentralError) as raised:
        connect(dataclasses.replace(front, port=free_port()))
    assert "\n" not in str(raised.value) and "unreachable" in str(raised.value)


# --- TLS verify-full ---------------------------------------------------------------------------------
@pytest.fixture
def tls_terminal(central: PgServer, tmp_path: Path) -> CentralTarget:
    """A terminal that connects by the certificate's name with verify-full and the test CA."""
    tls = central.tls
    with admin(central) as conn:
        creds = add_terminal(conn, "tls-gate")
    target = CentralTarget(
        host=tls.hostname,
        port=central.port,
        user=creds.role,
        sslmode="verify-full",
        sslrootcert=tls.ca_cert,
        passfile=tmp_path / "tls.pgpass",
    )
    write_passfile(tmp_path / "tls.pgpass", target, creds)
    return target


def test_verify_full_with_the_right_ca_connects_over_tls(tls_terminal: CentralTarget) -> None:
    with connect(tls_terminal) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT clockface.current_terminal()").fetchone() == ("tls-gate",)


def test_verify_full_with_another_ca_is_a_one_line_certificate_error(
    central: PgServer, tls_terminal: CentralTarget
) -> None:
    with pytest.raises(CentralError) as raised:
        connect(dataclasses.replace(tls_terminal, sslrootcert=central.tls.other_ca_cert))
    message = str(raised.value)
    assert "\n" not in message and "not signed by the CA" in message and "bad certificate" in message


def test_verify_full_with_a_name_not_in_the_certificate_is_a_one_line_hostname_error(
    tls_terminal: CentralTarget,
) -> None:
    with pytest.raises(CentralError) as raised:
        connect(dataclasses.replace(tls_terminal, host="127.0.0.1"))
    message = str(raised.value)
    assert "\n" not in message and "hostname mismatch" in message


def test_verify_full_without_the_ca_file_says_so(tls_terminal: CentralTarget, tmp_path: Path) -> None:
    with pytest.raises(CentralError, match="no CA file"):
        connect(dataclasses.replace(tls_terminal, sslrootcert=tmp_path / "missing.crt"))


# --- the passfile ------------------------------------------------------------------------------------
def test_passfile_is_0600_atomic_and_escaped_as_libpq_reads_it(central: PgServer, terminal: Terminal) -> None:
    front = terminal("front-gate")
    assert front.passfile is not None
    front.passfile.write_text("stale\n")
    front.passfile.chmod(0o644)
    tricky = TerminalCredentials(name="front-gate", role=front.user, password=r"a:b\c:\\d")
    with admin(central) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(front.user), sql.Literal(tricky.password))
        )
    old_umask = os.umask(0)  # the file's mode must not depend on the caller's umask
    try:
        write_passfile(front.passfile, front, tricky)
    finally:
        os.umask(old_umask)
    assert front.passfile.stat().st_mode & 0o777 == 0o600
    assert front.passfile.read_text() == pgpass_line(front, tricky)
    assert r"a\:b\\c\:\\\\d" in front.passfile.read_text()
    assert sorted(p.name for p in front.passfile.parent.iterdir() if p.name.startswith(".")) == []
    with connect(front) as conn:  # libpq itself reads the escaped line back
        assert conn.execute("SELECT clockface.current_terminal()").fetchone() == ("front-gate",)


def test_a_passfile_libpq_ignores_is_one_line_naming_it(central: PgServer, terminal: Terminal) -> None:
    """A passfile readable by others is skipped by libpq: the line says so instead of 'wrong password'."""
    front = terminal("front-gate")
    assert front.passfile is not None
    front.passfile.chmod(0o644)
    with pytest.raises(CentralError) as raised:
        connect(front)
    message = str(raised.value)
    assert "\n" not in message and "no password" in message and str(front.passfile) in message
    assert front.passfile.read_text().rsplit(":", 1)[1].strip() not in message
