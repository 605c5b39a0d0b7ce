"""One PostgreSQL role per terminal, with the least privilege a terminal needs.

The model (grants in logs/central/schema.py v2): the group role
``clockface_terminal`` (NOLOGIN) holds every grant: CONNECT on the database,
USAGE on schema ``clockface``, INSERT on events (row-level security: only rows
whose terminal is clockface.current_terminal()), SELECT on the two
current-gallery views, EXECUTE on current_terminal(). Each terminal is a LOGIN
role ``clockface_t_<name, '-' as '_'>`` that is a member of the group and has
nothing of its own. So a stolen terminal can add events in its own name and
read the current gallery; it cannot read anyone's events, change or delete a
row, or see other roles' password hashes.

Why the password is hashed here: the role is created with a SCRAM verifier
computed by libpq on this side (PQencryptPasswordConn), so the password itself
never reaches the server, its statement log or pg_stat_statements. It is
returned once, to be written to the terminal's passfile, and never logged.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from logs.central.connect import CentralError, CentralTarget
from logs.central.schema import TERMINAL_GROUP

if TYPE_CHECKING:
    import psycopg

TERMINAL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")  # as terminals.name CHECK; used with fullmatch
ROLE_PREFIX = "clockface_t_"
PASSWORD_BYTES = 32
CONNECTION_LIMIT = 8  # the sync agent needs one; a few more for a person debugging


@dataclass(frozen=True)
class TerminalCredentials:
    name: str
    role: str
    password: str = field(repr=False)  # never in a repr, a log line or a traceback's locals dump


def role_name(terminal: str) -> str:
    """The LOGIN role of a terminal: `front-gate` -> `clockface_t_front_gate`."""
    check_terminal_name(terminal)
    return ROLE_PREFIX + terminal.replace("-", "_")


def check_terminal_name(name: str) -> None:
    if not TERMINAL_NAME.fullmatch(name):
        raise CentralError(
            f"terminal name {name!r}: use 1-41 characters, lower-case letters, digits, '-' or '_', starting with a letter or digit"
        )


def add_terminal(conn: psycopg.Connection, name: str, *, rotate: bool = False) -> TerminalCredentials:
    """Create terminal `name` (or, with rotate=True, give it a new password); returns the fresh password.

    One transaction: the role, its terminals row and an audit_log row (the role, never the password).
    Creating an existing terminal or rotating a missing one is a CentralError, so a typo cannot lock
    a working terminal out.
    """
    from psycopg import sql

    role = role_name(name)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    with conn.transaction():
        known = conn.execute("SELECT role_name FROM clockface.terminals WHERE name = %s", (name,)).fetchone()
        if known and not rotate:
            raise CentralError(
                f"terminal {name!r} exists: add --rotate to give it a new password (the old one stops working)"
            )
        if not known and rotate:
            raise CentralError(f"no terminal {name!r} to rotate: add it first")
        if not known:
            taken = conn.execute("SELECT name FROM clockface.terminals WHERE role_name = %s", (role,)).fetchone()
            if taken:
                raise CentralError(
                    f"terminal {name!r} would share role {role} with terminal {taken[0]!r}: choose another name"
                )
            if conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)).fetchone():
                raise CentralError(f"role {role} already exists on this server but is not a terminal of this database")
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {role} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                    " CONNECTION LIMIT {limit} PASSWORD {verifier} IN ROLE {group}"
                ).format(
                    role=sql.Identifier(role),
                    limit=sql.Literal(CONNECTION_LIMIT),
                    verifier=sql.Literal(verifier),
                    group=sql.Identifier(TERMINAL_GROUP),
                )
            )
            conn.execute("INSERT INTO clockface.terminals (name, role_name) VALUES (%s, %s)", (name, role))
        else:
            conn.execute(
                sql.SQL("ALTER ROLE {role} PASSWORD {verifier}").format(
                    role=sql.Identifier(role), verifier=sql.Literal(verifier)
                )
            )
        conn.execute(
            "INSERT INTO clockface.audit_log (action, detail) VALUES (%s, jsonb_build_object('terminal', %s::text, 'role', %s::text))",
            ("rotate-terminal" if known else "add-terminal", name, role),
        )
    return TerminalCredentials(name=name, role=role, password=password)


def pgpass_escape(value: str) -> str:
    """libpq's pgpass format: ':' and '\\' inside a field are escaped with a backslash."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(target: CentralTarget, creds: TerminalCredentials) -> str:
    fields = (target.host, str(target.port), target.database, creds.role, creds.password)
    return ":".join(pgpass_escape(f) for f in fields) + "\n"


def write_passfile(path: Path, target: CentralTarget, creds: TerminalCredentials) -> None:
    """Write the terminal's passfile: one pgpass line, mode 0600, atomically.

    The temp file is created 0600 (O_EXCL, so nothing else can have opened it) beside the target
    and renamed over it after fsync: the file is never world-readable, not even half-written.
    libpq ignores a passfile looser than 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: O_EXCL, mode 0600
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(pgpass_line(target, creds))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
