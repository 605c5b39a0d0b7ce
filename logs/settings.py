"""Typed settings for the attendance log and its web view.

These are plain frozen dataclasses. The bounds a type can carry are written
on the fields (``Annotated[..., msgspec.Meta(...)]``) and enforced by the one
config loader, :mod:`device.config`, which turns the ``[logs]`` and ``[web]``
tables into these objects; everything below that point receives a validated
object and never reads the file or the environment itself. Only the checks a
type cannot express (a real IANA zone, loopback unless allowed) live in
``__post_init__``, so a directly built object is checked too.

Errors are :class:`SettingsError`, one line in the wording every config error
uses: ``key = value`` and what is allowed. This module is the leaf both the
device and the logs package may import, so the error type lives here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from datetime import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from msgspec import Meta


class SettingsError(ValueError):
    """An unusable setting, as one line: ``key = value is <what is wrong> (<what is allowed>)``."""

    @classmethod
    def about(cls, key: str, value: Any, problem: str) -> SettingsError:
        return cls(f"{key} = {show_value(value)} {problem}")


def show_value(value: Any) -> str:
    """A value as the error line shows it: TOML-like, so it can be found in the file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, time):
        return value.isoformat()
    return repr(value)


_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
PORT = Annotated[int, Meta(ge=1, le=65535)]


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

    host: Annotated[str, Meta(min_length=1, description="a host name or address")] = "127.0.0.1"
    port: PORT = 8001
    # pbkdf2_sha256$... from `clockface web set-password`
    password_hash: (
        Annotated[str, Meta(pattern=r"^pbkdf2_sha256\$", description="output of `clockface web set-password`")] | None
    ) = None
    allow_lan: bool = False

    def __post_init__(self) -> None:
        if not self.allow_lan and not is_loopback(self.host):
            raise SettingsError.about(
                "web.host",
                self.host,
                "would serve the attendance log on the network; set web.allow_lan = true to allow it",
            )


@dataclass(frozen=True)
class LogsSettings:
    """``[logs]``: how attendance is recorded, shown and kept."""

    timezone: str = "UTC"  # IANA name, e.g. "Europe/London"; reports and "today" use it
    expected_start: time | None = None  # local time; arrivals after it are "late"
    retention_days: Annotated[int, Meta(ge=1, le=36500)] | None = None  # None keeps events forever
    terminal_id: Annotated[
        str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description="1-64 letters, digits or . _ : -")
    ] = "clockface"
    web: WebSettings = field(default_factory=WebSettings)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError.about(
                "logs.timezone", self.timezone, "is not an IANA time zone (e.g. 'Europe/London')"
            ) from exc
        if self.expected_start is not None and self.expected_start.tzinfo is not None:
            raise SettingsError.about("logs.expected_start", self.expected_start, "is not a local time (no offset)")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_web(self, **changes: Any) -> LogsSettings:
        """A copy with some web settings replaced (CLI flags override the file)."""
        return replace(self, web=replace(self.web, **changes))
