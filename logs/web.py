"""`clockface web`: the attendance log in Datasette, read-only and behind a password.

Why Datasette: it is the browser of the sqlite-utils ecosystem, gives admins
tables, filters, canned queries and CSV/JSON export without us writing a web
app. What we add is configuration:

* only the attendance database is opened (never the gallery, so no
  biometric table can be exposed), as a *mutable* file so Datasette reads it
  with ``mode=ro`` and sees new events (``immutable`` would cache a stale view
  of a WAL database);
* login through ``datasette-auth-passwords`` (user ``admin``, pbkdf2 hash)
  and :mod:`logs.datasette_plugin`, which refuses anonymous requests, ends
  sessions of an old password and throttles guessing;
* the hash reaches Datasette as ``{"$file": path}`` (or ``{"$env": VAR}``
  for a hash from the config), Datasette's secret configuration: it is read
  when needed, so ``set-password`` takes effect on a running server, and
  ``/-/metadata`` never shows it;
* canned queries for today, a date-range report and a person's history, in
  the configured time zone;
* loopback by default (see :class:`~logs.settings.WebSettings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from logs.settings import LogsSettings, is_loopback
from logs.store import AttendanceStore, StoreError
from logs.web_auth import PasswordSource

USERNAME = "admin"

TODAY_SQL = """
select
  person,
  clockface_time(min(case when event_type = 'check-in' then timestamp_utc end)) as first_in,
  clockface_time(max(case when event_type = 'check-out' then timestamp_utc end)) as last_out,
  clockface_hours(event_type, timestamp_utc) as hours,
  clockface_late_minutes(min(case when event_type = 'check-in' then timestamp_utc end)) as late_minutes,
  clockface_time(max(timestamp_utc)) as last_seen,
  count(*) as events
from events
where timestamp_utc >= clockface_day_start(clockface_today())
  and timestamp_utc < clockface_day_start(date(clockface_today(), '+1 day'))
group by person
order by person
""".strip()

REPORT_SQL = """
select
  clockface_date(timestamp_utc) as date,
  person,
  clockface_time(min(case when event_type = 'check-in' then timestamp_utc end)) as first_in,
  clockface_time(max(case when event_type = 'check-out' then timestamp_utc end)) as last_out,
  clockface_hours(event_type, timestamp_utc) as hours,
  clockface_late_minutes(min(case when event_type = 'check-in' then timestamp_utc end)) as late_minutes,
  count(*) as events
from events
where timestamp_utc >= clockface_day_start(:from_date)
  and timestamp_utc < clockface_day_start(date(:to_date, '+1 day'))
  and (:person = '' or person = :person)
group by date, person
order by date, person
""".strip()

HISTORY_SQL = """
select
  clockface_local(timestamp_utc) as local_time,
  event_type,
  round(distance, 3) as distance,
  source,
  terminal_id,
  id
from events
where person = :person
order by timestamp_utc desc
limit 1000
""".strip()


def metadata(db_name: str, settings: LogsSettings, password: PasswordSource) -> dict[str, Any]:
    """Datasette metadata: canned queries, hidden internals, plugin configuration."""
    zone = settings.timezone
    return {
        "title": "clockface attendance",
        "description": f"Read-only attendance log of terminal {settings.terminal_id}. Times in {zone}.",
        "databases": {
            db_name: {
                "tables": {"_deletion_permit": {"hidden": True}},
                "queries": {
                    "today": {
                        "title": f"Today ({zone})",
                        "description": "Who is in today: first check-in, last check-out, hours, minutes late.",
                        "sql": TODAY_SQL,
                        "hide_sql": True,
                    },
                    "report": {
                        "title": "Report for a date range",
                        "description": "Per person per local day (YYYY-MM-DD); leave person empty for everyone. "
                        "Hours pair check-ins with check-outs within each calendar day; "
                        "`clockface logs report` also credits night shifts to the day they started.",
                        "sql": REPORT_SQL,
                        "hide_sql": True,
                    },
                    "history": {
                        "title": "Person history",
                        "description": "Every event of one person, newest first.",
                        "sql": HISTORY_SQL,
                        "hide_sql": True,
                    },
                },
            }
        },
        "plugins": {
            "datasette-auth-passwords": {f"{USERNAME}_password_hash": password.datasette_value()},
            "clockface-logs": {
                "timezone": zone,
                "expected_start": settings.expected_start.isoformat() if settings.expected_start else None,
                **password.config(),
            },
        },
    }


def build_datasette(db_path: Path, settings: LogsSettings, password: PasswordSource) -> Any:
    """A Datasette instance over the attendance database only, with our plugin registered."""
    from datasette.app import Datasette
    from datasette.plugins import pm

    from logs import datasette_plugin

    # Fail early with the store's one-line errors (missing, corrupt, old schema).
    AttendanceStore(db_path, readonly=True).close()
    if not pm.is_registered(datasette_plugin):
        pm.register(datasette_plugin, name=datasette_plugin.PLUGIN_NAME)
    datasette_plugin.quiet_expected_errors()
    return Datasette(
        files=[str(db_path)],
        metadata=metadata(Path(db_path).stem, settings, password),
        settings={"allow_download": False, "sql_time_limit_ms": 3000, "max_returned_rows": 5000},
    )


def serve(db_path: Path, settings: LogsSettings, password: PasswordSource) -> None:
    """Run Datasette with uvicorn until interrupted."""
    import asyncio

    import uvicorn

    web = settings.web
    if not web.allow_lan and not is_loopback(web.host):
        raise StoreError(f"refusing to serve on {web.host}: set [web] allow_lan = true to allow the LAN")
    ds = build_datasette(db_path, settings, password)
    asyncio.run(ds.invoke_startup())
    print(f"clockface web: http://{web.host}:{web.port}/ (log in as '{USERNAME}')", flush=True)
    uvicorn.run(ds.app(), host=web.host, port=web.port, log_level="warning")


def hash_password(password: str) -> str:
    from datasette_auth_passwords.utils import hash_password as _hash

    return _hash(password)


def read_password_file(path: Path) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def write_password_file(path: Path, password_hash: str) -> None:
    """Write atomically with mode 0600: the hash is a secret's fingerprint, not for other users."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password_hash + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
