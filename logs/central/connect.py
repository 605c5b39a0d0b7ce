"""How clockface reaches the central PostgreSQL, and the one line it says when it cannot.

Why a module of its own: the sync agent, the gallery pull, the fleet reports and
the admin commands all connect the same way (libpq's passfile for the password,
TLS verify-full by default, a connect timeout and TCP keepalives so a dead
network is noticed rather than waited on), and all fail the same way: a
:class:`CentralError` whose message is one line a person can act on (wrong
password, unreachable, certificate not from our CA, host name not in the
certificate) and never holds a password.

psycopg is imported inside the functions: a terminal that is not in a fleet
never loads it, and `clockface run` never waits on it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# TCP keepalives: a cut network shows up as an error within about a minute, not hours.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
APPLICATION_NAME = "clockface"


class CentralError(RuntimeError):
    """One line a person can act on; never contains a password."""


@dataclass(frozen=True)
class CentralTarget:
    """Where and how to connect. No password field: the password lives in `passfile` (pgpass format)."""

    host: str
    port: int = 5432
    database: str = "clockface"
    user: str = ""
    sslmode: str = "verify-full"
    sslrootcert: Path | None = None
    passfile: Path | None = None
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.sslmode not in SSLMODES:
            raise CentralError(f"sslmode {self.sslmode!r} is not one of {', '.join(SSLMODES)}")

    @classmethod
    def from_dsn(cls, dsn: str) -> CentralTarget:
        """The target a DSN (key=value or postgresql:// URI) names; any password in it is dropped.

        A DSN without sslmode gets verify-full, not libpq's `prefer` (which accepts any certificate).
        """
        params = _parse_dsn(dsn)
        try:
            port = int(params.get("port") or 5432)
            timeout = float(params.get("connect_timeout") or 10.0)
        except ValueError as exc:
            raise CentralError(f"DSN has a bad port or connect_timeout: {exc}") from None
        return cls(
            host=params.get("host", ""),
            port=port,
            database=params.get("dbname") or "clockface",
            user=params.get("user", ""),
            sslmode=params.get("sslmode") or "verify-full",
            sslrootcert=Path(params["sslrootcert"]) if params.get("sslrootcert") else None,
            passfile=Path(params["passfile"]) if params.get("passfile") else None,
            connect_timeout_s=timeout,
        )

    def where(self) -> str:
        """`user@host:port/database`, for messages."""
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}:{self.port}/{self.database}"

    def conninfo_params(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect (libpq names)."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "sslmode": self.sslmode,
        }
        if self.user:
            params["user"] = self.user
        if self.sslrootcert is not None:
            params["sslrootcert"] = str(self.sslrootcert)
        if self.passfile is not None:
            params["passfile"] = str(self.passfile)
        return params


def _parse_dsn(dsn: str) -> dict[str, str]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        raise CentralError(f"cannot read the DSN: {_scrub(_first_line(str(exc)), _dsn_password(dsn))}") from None


def _dsn_password(dsn: str) -> str | None:
    """The password written in a DSN, found without libpq (so it can be scrubbed even from a parse error)."""
    match = re.search(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn) or re.search(r"://[^:/@]*:([^@/]*)@", dsn)
    if not match:
        return None
    value = match.group(1)
    return value[1:-1] if value.startswith("'") else value


def dsn_has_password(dsn: str) -> bool:
    """True when the DSN itself carries a password (then it was on a command line or in an environment)."""
    return bool(_dsn_password(dsn))


def connect(target: CentralTarget | str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the central server, or a one-line :class:`CentralError`.

    A `str` is an admin DSN, passed to libpq as written (a password in it is used, never shown).
    """
    import psycopg

    extra: dict[str, Any] = {"application_name": APPLICATION_NAME, **KEEPALIVES}
    if isinstance(target, str):
        conninfo, secret = target, _dsn_password(target)
        params = _parse_dsn(target)
        where = CentralTarget.from_dsn(target).where()
        if "connect_timeout" not in params:
            extra["connect_timeout"] = 10
    else:
        conninfo, secret, where = "", None, target.where()
        extra |= target.conninfo_params()
        extra["connect_timeout"] = max(1, math.ceil(target.connect_timeout_s))
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, **extra)
    except psycopg.Error as exc:
        raise CentralError(_scrub(explain(str(exc), where, target), secret)) from None


def explain(message: str, where: str, target: CentralTarget | str | None = None) -> str:
    """libpq's error text -> one line saying which of the usual problems it is."""
    text = " ".join(message.split())
    passfile = target.passfile if isinstance(target, CentralTarget) else None
    checks: list[tuple[str, str]] = [
        (
            r"password authentication failed",
            "wrong password (check the passfile, or rotate with `clockface central add-terminal --rotate`)",
        ),
        (
            r"no password supplied|fe_sendauth",
            f"no password for this user{f' in {passfile}' if passfile else ''} (passfile missing, unreadable, looser than 0600, or without a matching line)",
        ),
        (
            r"does not match host name",
            "the server certificate does not name this host (hostname mismatch: connect by the name in the certificate)",
        ),
        (
            r"certificate verify failed|self[- ]signed certificate|unable to get local issuer",
            "the server certificate is not signed by the CA in sslrootcert (bad certificate)",
        ),
        (
            r"root certificate file .* does not exist",
            "no CA file for verify-full (set sslrootcert to the central server's CA certificate)",
        ),
        (r"server does not support SSL", "the server does not offer TLS but sslmode requires it"),
        (r"database \S+ does not exist", "the database does not exist (run `clockface central init`)"),
        (r"role \S+ does not exist", "no such role on the server (run `clockface central add-terminal`)"),
        (r"not permitted to log in|pg_hba\.conf", "the server refuses this login (pg_hba.conf or role settings)"),
        (r"timeout expired", "unreachable: no answer before the connect timeout"),
        (r"Connection refused", "unreachable: connection refused (is PostgreSQL running and listening there?)"),
        (
            r"could not translate host name|Name or service not known|Temporary failure in name resolution",
            "unreachable: the host name does not resolve",
        ),
        (r"No route to host|Network is unreachable", "unreachable: no route to the host"),
        (
            r"server closed the connection unexpectedly|terminating connection",
            "the connection was closed by the server",
        ),
    ]
    for pattern, meaning in checks:
        if re.search(pattern, text, re.IGNORECASE):
            return f"central server {where}: {meaning}"
    return f"central server {where}: {_first_line(message)}"


def _first_line(message: str) -> str:
    for line in message.splitlines():
        if line.strip():
            return line.strip()
    return "connection failed"


def _scrub(line: str, secret: str | None) -> str:
    return line.replace(secret, "***") if secret else line
