"""Typed settings for the attendance log and its web view.

The device's config loader parses the one TOML file and hands the ``[logs]``
and ``[web]`` tables to :meth:`LogsSettings.from_toml_dict`; everything below
this point receives a frozen, validated object and never reads the file or the
environment itself.

Errors are :class:`SettingsError` with one line naming the key, so a typo in
``/etc/clockface/config.toml`` is reported where it is, not as a traceback
from deep inside a report.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingsError(ValueError):
    """An invalid ``[logs]`` / ``[web]`` setting, as one line."""


_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
_TERMINAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def is_loopback(host: str) -> bool:
    """True when *host* only accepts connections from this machine."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebSettings:
    """``[web]``: the Datasette view of the attendance log.

    Loopback by default: serving on the LAN is a decision someone must write
    down (``allow_lan = true``), not the accident of a host setting.
    """

    host: str = "127.0.0.1"
    port: int = 8001
    password_hash: str | None = None  # pbkdf2_sha256$... from `clockface web set-password`
    allow_lan: bool = False

    def __post_init__(self) -> None:
        if not self.host:
            raise SettingsError("web.host must not be empty")
        if not 1 <= self.port <= 65535:
            raise SettingsError(f"web.port must be 1-65535, got {self.port}")
        if not self.allow_lan and not is_loopback(self.host):
            raise SettingsError(
                f"web.host = {self.host!r} would serve the attendance log on the network; set web.allow_lan = true to allow it"
            )
        if self.password_hash is not None and not self.password_hash.startswith("pbkdf2_sha256$"):
            raise SettingsError("web.password_hash must come from `clockface web set-password` (pbkdf2_sha256$...)")


@dataclass(frozen=True)
class LogsSettings:
    """``[logs]``: how attendance is recorded, shown and kept."""

    timezone: str = "UTC"  # IANA name, e.g. "Europe/London"; reports and "today" use it
    expected_start: time | None = None  # local time; arrivals after it are "late"
    retention_days: int | None = None  # None keeps events forever
    terminal_id: str = "clockface"
    web: WebSettings = field(default_factory=WebSettings)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(
                f"logs.timezone = {self.timezone!r} is not an IANA time zone (e.g. 'Europe/London')"
            ) from exc
        if self.retention_days is not None and self.retention_days < 1:
            raise SettingsError(
                f"logs.retention_days must be at least 1 (omit it to keep forever), got {self.retention_days}"
            )
        if not _TERMINAL_ID.match(self.terminal_id):
            raise SettingsError(f"logs.terminal_id = {self.terminal_id!r} must be 1-64 letters, digits or . _ : -")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_toml_dict(cls, d: Mapping[str, Any]) -> LogsSettings:
        """Build settings from a parsed TOML document.

        *d* is the whole document (only its ``logs`` and ``web`` tables are
        read; other sections belong to other packages) or, for convenience, a
        bare ``[logs]`` table. Unknown keys in those tables are errors:
        a misspelt ``retention_day`` must not silently keep data forever.
        """
        if not isinstance(d, Mapping):
            raise SettingsError("config must be a TOML table")
        if "logs" in d or "web" in d:
            logs_table = d.get("logs", {})
            web_table = d.get("web", {})
        else:
            logs_table, web_table = d, {}
        if not isinstance(logs_table, Mapping):
            raise SettingsError("[logs] must be a table")
        if not isinstance(web_table, Mapping):
            raise SettingsError("[web] must be a table")
        logs_table = dict(logs_table)
        if "web" in logs_table:  # [logs.web] is accepted as a synonym of [web]
            nested = logs_table.pop("web")
            if not isinstance(nested, Mapping):
                raise SettingsError("[logs.web] must be a table")
            web_table = {**nested, **web_table}

        _reject_unknown("logs", logs_table, {"timezone", "expected_start", "retention_days", "terminal_id"})
        _reject_unknown("web", web_table, {"host", "port", "password_hash", "allow_lan"})

        kwargs: dict[str, Any] = {}
        if "timezone" in logs_table:
            kwargs["timezone"] = _typed("logs.timezone", logs_table["timezone"], str)
        if "expected_start" in logs_table:
            kwargs["expected_start"] = parse_time("logs.expected_start", logs_table["expected_start"])
        if "retention_days" in logs_table:
            kwargs["retention_days"] = _typed("logs.retention_days", logs_table["retention_days"], int)
        if "terminal_id" in logs_table:
            kwargs["terminal_id"] = _typed("logs.terminal_id", logs_table["terminal_id"], str)

        web_kwargs: dict[str, Any] = {}
        if "host" in web_table:
            web_kwargs["host"] = _typed("web.host", web_table["host"], str)
        if "port" in web_table:
            web_kwargs["port"] = _typed("web.port", web_table["port"], int)
        if "password_hash" in web_table:
            web_kwargs["password_hash"] = _typed("web.password_hash", web_table["password_hash"], str) or None
        if "allow_lan" in web_table:
            web_kwargs["allow_lan"] = _typed("web.allow_lan", web_table["allow_lan"], bool)
        return cls(**kwargs, web=WebSettings(**web_kwargs))

    def with_web(self, **changes: Any) -> LogsSettings:
        """A copy with some web settings replaced (CLI flags override the file)."""
        return replace(self, web=replace(self.web, **changes))


def _reject_unknown(table: str, values: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"unknown key {table}.{unknown[0]} (expected one of: {', '.join(sorted(known))})")


def _typed(name: str, value: Any, kind: type) -> Any:
    # bool is an int in Python; TOML keeps them apart, so do we.
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise SettingsError(f"{name} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def parse_time(name: str, value: Any) -> time:
    """Accept a TOML local time (``08:30:00``) or a string ``"08:30"`` / ``"08:30:00"``."""
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise SettingsError(f"{name} must be a local time without offset")
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SettingsError(f"{name} must be a time like 08:30, got {value!r}")
