"""`clockface central add-terminal` against a real PostgreSQL: what it prints and what it writes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from device.cli import main
from logs.central.connect import CentralTarget, connect
from tests.central.pg import PgServer

CONTRACT_KEYS = {"host", "port", "database", "user", "passfile", "sslmode", "sslrootcert"}


def add(central: PgServer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["central", "add-terminal", *args], env={"CLOCKFACE_CENTRAL_DSN": central.admin_dsn}
    )
    return result.exit_code, result.stdout, result.stderr


def test_add_terminal_prints_the_central_lines_and_writes_a_working_passfile(central: PgServer, tmp_path: Path) -> None:
    passfile = tmp_path / "keys" / "front.pgpass"
    code, out, err = add(central, "front-gate", "--passfile", str(passfile), "--sslmode", "disable")
    assert code == 0, err
    assert "role clockface_t_front_gate created" in out and str(passfile) in out
    settings = tomllib.loads(out[out.index("[central]") :])["central"]
    assert set(settings) == CONTRACT_KEYS
    assert settings["user"] == "clockface_t_front_gate" and settings["port"] == central.port
    assert settings["passfile"] == "/etc/clockface/central.pgpass"
    assert passfile.stat().st_mode & 0o777 == 0o600
    password = passfile.read_text().rstrip("\n").rsplit(":", 1)[1]
    assert password not in out and password not in err
    target = CentralTarget(
        host=settings["host"], port=settings["port"], user=settings["user"], sslmode="disable", passfile=passfile
    )
    with connect(target) as conn:
        assert conn.execute("SELECT clockface.current_terminal()").fetchone() == ("front-gate",)


def test_add_terminal_shows_the_password_only_when_asked_and_rotates_only_when_asked(
    central: PgServer, tmp_path: Path
) -> None:
    passfile = tmp_path / "front.pgpass"
    code, out, _ = add(central, "front-gate", "--passfile", str(passfile), "--json")
    assert code == 0 and "password" not in json.loads(out)
    assert json.loads(out)["central"]["sslmode"] == "verify-full"
    assert json.loads(out)["central"]["sslrootcert"] == "/etc/clockface/central-ca.crt"

    code, _, err = add(central, "front-gate", "--passfile", str(passfile))
    assert code == 1 and err.strip() == (
        "clockface: error: terminal 'front-gate' exists: add --rotate to give it a new password (the old one stops working)"
    )

    code, out, _ = add(central, "front-gate", "--passfile", str(passfile), "--rotate", "--show-password", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["action"] == "rotated"
    assert passfile.read_text().rstrip("\n").endswith(":" + shown["password"])


@pytest.mark.parametrize("name", ["Front", "front gate"])
def test_add_terminal_refuses_a_bad_name_before_touching_the_server(central: PgServer, name: str) -> None:
    code, _, err = add(central, name)
    assert code == 1 and "terminal name" in err and len(err.strip().splitlines()) == 1
    with connect(central.admin_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM clockface.terminals").fetchone() == (0,)
