"""A small Datasette plugin: no anonymous access, and local-time SQL functions for the canned queries.

Registered by :mod:`logs.web` on the Datasette instance it builds (it is not
an installed entry point, so a stray ``datasette`` run elsewhere never loads it).

* ``asgi_wrapper`` refuses every request without a logged-in actor, before
  Datasette routes it: pages redirect to ``/-/login``, everything else
  (``.json``, ``.csv``, ``/-/versions`` ...) gets ``401``. Only the login form
  and static assets are reachable anonymously. Relying on Datasette's per-view
  permissions alone would leave the ``/-/`` introspection endpoints open.
* ``/-/metadata`` is refused even to admins: it would echo the password hash
  from the plugin configuration.
* ``prepare_connection`` registers ``clockface_*`` SQL functions that convert
  the stored UTC text to the configured IANA zone (SQLite itself only knows
  UTC and the server's local time).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from datasette import hookimpl
from datasette.plugins import pm
from datasette.utils import await_me_maybe
from datasette.utils.asgi import Request, Response

from logs import reports
from logs.store import AttendanceEvent, format_utc, parse_utc

PLUGIN_NAME = "clockface-logs"
ANONYMOUS_PREFIXES = ("/-/login", "/-/static/", "/-/static-plugins/", "/favicon.ico")
ALWAYS_REFUSED = ("/-/metadata",)


def _config(datasette: Any) -> dict[str, Any]:
    return datasette.plugin_config(PLUGIN_NAME) or {}


# --- SQL functions (pure given the zone) ---------------------------------------------


def _parse(ts: Any) -> datetime | None:
    if not ts:
        return None
    try:
        return parse_utc(str(ts))
    except ValueError:
        return None


def make_functions(zone: ZoneInfo, expected_start: time | None, now: Any = None) -> dict[str, Any]:
    """The scalar SQL functions, as plain Python callables so they can be tested without Datasette."""

    def local(ts: Any) -> str | None:
        moment = _parse(ts)
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if moment else None

    def local_time(ts: Any) -> str | None:
        moment = _parse(ts)
        return moment.astimezone(zone).strftime("%H:%M") if moment else None

    def local_date(ts: Any) -> str | None:
        moment = _parse(ts)
        return moment.astimezone(zone).date().isoformat() if moment else None

    def today() -> str:
        current = now() if now else datetime.now(UTC)
        return current.astimezone(zone).date().isoformat()

    def day_start(day: Any) -> str | None:
        try:
            parsed = date.fromisoformat(str(day).strip())
        except (TypeError, ValueError):
            return None
        return format_utc(reports.day_bounds_utc(parsed, zone)[0])

    def late_minutes(ts: Any) -> int | None:
        moment = _parse(ts)
        if moment is None:
            return None
        local_moment = moment.astimezone(zone)
        return reports.late_minutes(local_moment, local_moment.date(), zone, expected_start)

    return {
        "clockface_local": local,
        "clockface_time": local_time,
        "clockface_date": local_date,
        "clockface_today": today,
        "clockface_day_start": day_start,
        "clockface_late_minutes": late_minutes,
    }


class HoursAggregate:
    """``clockface_hours(event_type, timestamp_utc)``: shift-paired hours of a group, same rules as the CLI."""

    def __init__(self) -> None:
        self.events: list[AttendanceEvent] = []

    def step(self, event_type: Any, ts: Any) -> None:
        moment = _parse(ts)
        if moment is None or event_type not in ("check-in", "check-out"):
            return
        self.events.append(AttendanceEvent("-", str(event_type), moment, 0, 0.0, "-", "-", id="-"))

    def finalize(self) -> float:
        shifts = reports.pair_shifts(self.events)
        seconds = sum((s.end - s.start).total_seconds() for s in shifts if s.start and s.end)
        return round(seconds / 3600, 2)


@hookimpl
def prepare_connection(conn: Any, database: str, datasette: Any) -> None:
    config = _config(datasette)
    zone = ZoneInfo(config.get("timezone", "UTC"))
    expected = config.get("expected_start")
    expected_start = time.fromisoformat(expected) if expected else None
    for name, fn in make_functions(zone, expected_start).items():
        conn.create_function(name, fn.__code__.co_argcount, fn)
    conn.create_aggregate("clockface_hours", 2, HoursAggregate)


# --- access control ------------------------------------------------------------------


async def _actor(datasette: Any, scope: dict, receive: Any) -> Any:
    request = Request(scope, receive)
    for candidate in pm.hook.actor_from_request(datasette=datasette, request=request):
        actor = await await_me_maybe(candidate)
        if actor:
            return actor
    return None


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    def wrap(app: Any) -> Any:
        async def login_required(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            path = scope.get("path", "")
            if any(path.startswith(prefix) for prefix in ALWAYS_REFUSED):
                return await Response.text("Not available", status=403).asgi_send(send)
            if any(path.startswith(prefix) for prefix in ANONYMOUS_PREFIXES):
                return await app(scope, receive, send)
            if await _actor(datasette, scope, receive) is not None:
                return await app(scope, receive, send)
            headers = dict(scope.get("headers") or [])
            wants_html = b"text/html" in headers.get(b"accept", b"")
            if scope.get("method") == "GET" and wants_html and not path.endswith((".json", ".csv")):
                return await Response.redirect(datasette.urls.path("/-/login")).asgi_send(send)
            return await Response.text(
                "401 login required", status=401, headers={"www-authenticate": 'Basic realm="clockface"'}
            ).asgi_send(send)

        return login_required

    return wrap
