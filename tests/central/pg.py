"""A throwaway PostgreSQL cluster for the fleet tests: real server, real auth, no mock.

Why a cluster of our own rather than the machine's: the tests create and drop
roles and databases, restart the server mid-sync and turn TLS on; none of that
may touch a server someone else uses. The cluster lives in a temp dir, listens
on 127.0.0.1 at a free port (unix socket in the temp dir, never /run), asks
every TCP client for a scram-sha-256 password, and keeps fsync on so a
"server restarted mid-sync" test means what it says.

PostgreSQL refuses to run as root, so when we are root the server runs as the
unprivileged `postgres` user (created with `useradd --system` if absent);
the temp dir is made for it (mode 0700, owned by it). The binaries are found
under /usr/lib/postgresql/<newest>/bin (Debian's `postgresql` package;
`./setup.sh` installs it in a dev set-up).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")
HOST = "127.0.0.1"
SUPERUSER = "clockface_admin"
DATABASE = "clockface"
SERVER_USER = "postgres"
TLS_HOSTNAME = "localhost"  # the name in the server certificate; 127.0.0.1 is deliberately not in it


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (the caller skips or fails)."""


def find_bin_dir(root: Path = PG_ROOT) -> Path:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb, postgres and pg_ctl."""
    found = []
    for candidate in root.glob("*/bin") if root.is_dir() else []:
        major = candidate.parent.name
        if re.fullmatch(r"\d+(\.\d+)?", major) and all(
            (candidate / b).is_file() for b in ("initdb", "postgres", "pg_ctl")
        ):
            found.append((tuple(int(p) for p in major.split(".")), candidate))
    if not found:
        raise PgUnavailable(f"no PostgreSQL server binaries under {root}/*/bin (apt install postgresql, or ./setup.sh)")
    return max(found)[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def ensure_server_user(name: str = SERVER_USER) -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


@dataclass(frozen=True)
class TlsFiles:
    """A test CA, the server's certificate signed by it, and an unrelated CA (for the failure cases)."""

    ca_cert: Path
    other_ca_cert: Path
    hostname: str  # the server certificate's only name (DNS SAN)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_tls_files(directory: Path, hostname: str = TLS_HOSTNAME) -> tuple[TlsFiles, Path, Path]:
    """(files, server.crt, server.key) made with the openssl command line."""
    if shutil.which("openssl") is None:
        raise PgUnavailable("openssl is not installed (apt install openssl, or ./setup.sh)")
    directory.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=clockface test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hostname}", "-keyout", "server.key",
             "-out", "server.csr", cwd=directory)  # fmt: skip
    (directory / "server.ext").write_text(f"subjectAltName=DNS:{hostname}\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "server.ext", "-out", "server.crt", cwd=directory)  # fmt: skip
    files = TlsFiles(ca_cert=directory / "ca.crt", other_ca_cert=directory / "other-ca.crt", hostname=hostname)
    return files, directory / "server.crt", directory / "server.key"


class PgServer:
    """One throwaway cluster: initdb on construction, then start/stop/restart; remove() deletes it all."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.host = HOST
        self.port = free_port()
        self.superuser = SUPERUSER
        self.password = secrets.token_urlsafe(24)
        self._user = ensure_server_user()
        self.base = Path(tempfile.mkdtemp(prefix="clockface-pg-"))
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log_file = self.base / "server.log"
        self._tls: TlsFiles | None = None
        self.socket_dir.mkdir()
        if self._user is not None:
            for path in (self.base, self.socket_dir):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._user is not None:
            os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-U", self.superuser, f"--pwfile={pwfile}",
                  "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
        pwfile.unlink()
        self._append_conf(
            f"listen_addresses = '{self.host}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "fsync = on\n"
            "max_connections = 200\n"
            "shared_buffers = 32MB\n"
        )
        # Only the password methods: no trust, no peer, so every test connection authenticates.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    # --- the server process ---------------------------------------------------------------------
    def _run(self, binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bin_dir / binary), *args],
            cwd=self.base,
            check=check,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
            **kwargs,
        )

    def _append_conf(self, text: str) -> None:
        conf = self.data_dir / "postgresql.conf"
        conf.write_text(conf.read_text() + "\n" + text)

    def start(self) -> None:
        done = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60", "start", check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()}\n{self.server_log()}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def reload(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "reload")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def server_log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    # --- how to reach it ------------------------------------------------------------------------
    def dsn(self, database: str = DATABASE, user: str | None = None, password: str | None = None, **extra: str) -> str:
        """A libpq key=value DSN (TCP, no TLS unless `extra` asks for it)."""
        parts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": database,
            "user": user or self.superuser,
            "password": self.password if password is None and user is None else (password or ""),
            "sslmode": "disable",
            **extra,
        }
        return " ".join(f"{k}={_quote(v)}" for k, v in parts.items() if v != "")

    @property
    def admin_dsn(self) -> str:
        """The superuser on database `clockface` (created and migrated by the `pg` fixture)."""
        return self.dsn()

    @property
    def maintenance_dsn(self) -> str:
        """The superuser on database `postgres`: for dropping and recreating `clockface`."""
        return self.dsn(database="postgres")

    # --- TLS ------------------------------------------------------------------------------------
    @property
    def tls(self) -> TlsFiles:
        """Turn ssl=on (once; a restart) with a server certificate from a test CA.

        Plain (sslmode=disable) clients keep working: pg_hba's `host` lines match both.
        """
        if self._tls is None:
            files, crt, key = make_tls_files(self.base / "tls")
            for source in (crt, key):
                target = self.data_dir / source.name
                shutil.copyfile(source, target)
                target.chmod(0o600)
                if self._user is not None:
                    os.chown(target, self._user.pw_uid, self._user.pw_gid)
            self._append_conf("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
            self.restart()  # a reload would race the first verify-full connection
            self._tls = files
        return self._tls


def _quote(value: str) -> str:
    """libpq conninfo quoting: single quotes around anything with spaces, quotes or backslashes."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
