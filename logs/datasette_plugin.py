"""A small Datasette plugin: no anonymous access, and local-time SQL functions for the canned queries.

Registered by :mod:`logs.web` on the Datasette instance it builds (it is not
an installed entry point, so a stray ``datasette`` run elsewhere never loads it).

* ``asgi_wrapper`` refuses every request without a logged-in actor, before
  Datasette routes it: pages redirect to ``/-/login``, everything else
  (``.json``, ``.csv``, ``/-/versions`` ...) gets ``401``. Only the login form
  and static assets are reachable anonymously. Relying on Datasette's per-view
  permissions alone would leave the ``/-/`` introspection endpoints open.
  It also owns the session: the cookie datasette-auth-passwords sets at login
  is re-signed with a fingerprint of the password hash and an expiry
  (HttpOnly, Max-Age); a cookie of an older password is logged out on its
  next request; wrong logins (form or Basic auth) are throttled per client
  address (:mod:`logs.web_auth`). ``.csv`` answers pass through the shared
  formula escaping (:mod:`logs.csv_export`).
* The password hash is never in Datasette's metadata (only ``{"$file": ...}``
  or ``{"$env": ...}``, resolved by Datasette when a plugin asks), so an
  admin may look at ``/-/metadata``.
* ``prepare_connection`` registers ``clockface_*`` SQL functions that convert
  the stored UTC text to the configured IANA zone (SQLite itself only knows
  UTC and the server's local time).

Why one module over 300 lines: Datasette finds a plugin's hooks on one module object; splitting the hooks would only move the registration, not the length.
"""

from __future__ import annotations

import time as time_module
import weakref
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from http.cookies import SimpleCookie
from typing import Any
from zoneinfo import ZoneInfo

from datasette import hookimpl
from datasette.plugins import pm
from datasette.utils import await_me_maybe, baseconv
from datasette.utils.asgi import Request, Response
from itsdangerous import BadSignature

from logs import reports
from logs.csv_export import CsvTextEscaper
from logs.store import AttendanceEvent, format_utc, parse_utc
from logs.web_auth import SESSION_MAX_AGE, LoginThrottle, PasswordSource, fingerprint

PLUGIN_NAME = "clockface-logs"
SESSION_COOKIE = "ds_actor"  # Datasette's own actor cookie, so its views and /-/logout know it
LOGIN_PATH = "/-/login"
STATIC_PREFIXES = ("/-/static/", "/-/static-plugins/", "/favicon.ico")


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


@dataclass
class _WebState:
    """Per Datasette instance: where the password is, and who has been guessing it."""

    password: PasswordSource
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


_STATE: weakref.WeakKeyDictionary[Any, _WebState] = weakref.WeakKeyDictionary()


def _state(datasette: Any) -> _WebState:
    state = _STATE.get(datasette)
    if state is None:
        state = _STATE[datasette] = _WebState(PasswordSource.from_config(_config(datasette)))
    return state


def quiet_expected_errors() -> None:
    """Keep 404s and other 4xx answers out of the server log.

    Datasette's default ``handle_exception`` prints every exception, a plain
    404 included, through ``rich`` with ``show_locals=True`` whenever rich is
    importable (it is, beside keras); that floods the journal with tracebacks
    and local variables. Without rich it prints a traceback for real 500s
    only, which is what a service log should have.
    """
    import datasette.handle_exception as default_handler

    default_handler.rich = None


async def _actor(datasette: Any, scope: dict, receive: Any) -> Any:
    request = Request(scope, receive)
    for candidate in pm.hook.actor_from_request(datasette=datasette, request=request):
        actor = await await_me_maybe(candidate)
        if actor:
            return actor
    return None


def _client(scope: dict) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _header(scope: dict, name: bytes) -> bytes:
    return next((v for k, v in scope.get("headers") or [] if k.lower() == name), b"")


def _session_is_current(datasette: Any, cookie_value: str, current: str) -> bool:
    """A signed session of the current password that has not expired."""
    try:
        decoded = datasette.unsign(cookie_value, "actor")
    except BadSignature:
        return False
    if not isinstance(decoded, dict) or decoded.get("f") != current or "a" not in decoded:
        return False
    expires = decoded.get("e")
    return bool(expires) and int(baseconv.base62.decode(expires)) >= time_module.time()


def _without_cookie(scope: dict, name: str) -> dict:
    """The scope with one cookie removed, so nothing downstream sees it."""
    headers = []
    for key, value in scope.get("headers") or []:
        if key.lower() == b"cookie":
            kept = [p for p in value.split(b";") if p.strip().split(b"=", 1)[0] != name.encode()]
            value = b";".join(kept).strip()
            if not value:
                continue
        headers.append((key, value))
    return {**scope, "headers": headers}


def _cookie_header(name: str, value: str, max_age: int) -> bytes:
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    cookie[name]["path"] = "/"
    cookie[name]["max-age"] = max_age
    cookie[name]["samesite"] = "Lax"
    cookie[name]["httponly"] = True
    return cookie.output(header="").strip().encode("latin-1")


def _session_cookie(datasette: Any, set_cookie: bytes, current: str) -> bytes | None:
    """Our session cookie in place of the one datasette-auth-passwords set at login:
    the same signed actor plus the password fingerprint and an expiry, HttpOnly, with a Max-Age."""
    parsed: SimpleCookie = SimpleCookie()
    parsed.load(set_cookie.decode("latin-1"))
    if SESSION_COOKIE not in parsed:
        return None
    try:
        decoded = datasette.unsign(parsed[SESSION_COOKIE].value, "actor")
    except BadSignature:
        return None
    expires = baseconv.base62.encode(int(time_module.time()) + SESSION_MAX_AGE)
    signed = datasette.sign({"a": decoded["a"], "e": expires, "f": current}, "actor")
    return _cookie_header(SESSION_COOKIE, signed, SESSION_MAX_AGE)


def _sets_session(headers: list) -> bool:
    return any(k.lower() == b"set-cookie" and v.startswith(SESSION_COOKIE.encode() + b"=") for k, v in headers)


def _clearing_send(send: Any) -> Any:
    """Add a Set-Cookie that ends a stale session, unless the response sets a new one."""

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            if not _sets_session(headers):
                headers.append((b"set-cookie", _cookie_header(SESSION_COOKIE, "", 0)))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _login_send(send: Any, datasette: Any, current: str, throttle: LoginThrottle, client: str) -> Any:
    """Watch the login form's answer: count failures, and swap in our session cookie on success."""

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = []
            logged_in = False
            for key, value in message.get("headers") or []:
                if key.lower() == b"set-cookie" and value.startswith(SESSION_COOKIE.encode() + b"="):
                    cookie = _session_cookie(datasette, value, current)
                    if cookie is not None:
                        headers.append((b"set-cookie", cookie))
                        logged_in = True
                    continue
                headers.append((key, value))
            if logged_in:
                throttle.succeeded(client)
            else:
                throttle.failed(client)
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _csv_send(send: Any) -> Any:
    """Pass a ``.csv`` answer through :class:`~logs.csv_export.CsvTextEscaper` (HTML debug pages untouched)."""
    escaper: CsvTextEscaper | None = None

    async def wrapped(message: dict) -> None:
        nonlocal escaper
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            if content_type.startswith((b"text/csv", b"text/plain")):
                escaper = CsvTextEscaper()
                headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                message = {**message, "headers": headers}
        elif message["type"] == "http.response.body" and escaper is not None:
            body = escaper.feed(message.get("body", b""))
            if not message.get("more_body", False):
                body += escaper.close()
            message = {**message, "body": body}
        await send(message)

    return wrapped


def _too_many(wait: int) -> Response:
    return Response.text(
        f"429 too many failed logins; try again in {wait} s", status=429, headers={"retry-after": str(wait)}
    )


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    def wrap(app: Any) -> Any:
        async def login_required(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            path = scope.get("path", "")
            if any(path.startswith(prefix) for prefix in STATIC_PREFIXES):
                return await app(scope, receive, send)
            state = _state(datasette)
            password_hash = state.password.current()
            if password_hash is None:
                return await Response.text(
                    "503 no web password is set: run `clockface web set-password`", status=503
                ).asgi_send(send)
            current = fingerprint(password_hash)
            cookie = Request(scope, receive).cookies.get(SESSION_COOKIE)
            if cookie is not None and not _session_is_current(datasette, cookie, current):
                # A session of an old password (or expired): logged out, here and downstream.
                scope, send = _without_cookie(scope, SESSION_COOKIE), _clearing_send(send)
            client = _client(scope)
            if path.startswith(LOGIN_PATH):
                if scope.get("method") != "POST":
                    return await app(scope, receive, send)
                wait = state.throttle.retry_after(client)
                if wait is not None:
                    return await _too_many(wait).asgi_send(send)
                return await app(scope, receive, _login_send(send, datasette, current, state.throttle, client))
            basic = _header(scope, b"authorization").startswith(b"Basic ")
            if basic and (wait := state.throttle.retry_after(client)) is not None:
                return await _too_many(wait).asgi_send(send)
            if await _actor(datasette, scope, receive) is not None:
                if basic:
                    state.throttle.succeeded(client)
                return await app(scope, receive, _csv_send(send) if path.endswith(".csv") else send)
            if basic:
                state.throttle.failed(client)
            wants_html = b"text/html" in _header(scope, b"accept")
            if scope.get("method") == "GET" and wants_html and not path.endswith((".json", ".csv")):
                return await Response.redirect(datasette.urls.path(LOGIN_PATH)).asgi_send(send)
            return await Response.text(
                "401 login required", status=401, headers={"www-authenticate": 'Basic realm="clockface"'}
            ).asgi_send(send)

        return login_required

    return wrap
