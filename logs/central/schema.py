"""The central PostgreSQL schema, versioned like logs/store.py: frozen SQL per version.

Why frozen: a central server outlives many clockface releases and several
terminals of different ages talk to it. ``MIGRATIONS[n]`` takes a database from
version n-1 to n and is never edited once released; a change is a new version.
Each version is applied in one transaction together with its
``schema_migrations`` row, so a crash leaves the database at a version, never
between two. A database whose schema is newer than this code is refused with
one line (an older clockface must not write to a schema it does not know).

v1 is the data (schema ``clockface``); v2 is who may touch it: the terminals'
group role, the row-level security on events, and the revokes of what PUBLIC
gets by default. The role model itself is described in logs/central/roles.py.
v3 is the erasure requests every terminal applies to its own log (see
device/sync/erasures.py), and the guard that keeps an erased person's old
events from coming back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logs.central.connect import CentralError

if TYPE_CHECKING:
    import psycopg

SCHEMA = "clockface"
TERMINAL_GROUP = "clockface_terminal"
# pg_advisory_lock key: two `central init` runs at once take turns instead of racing.
_LOCK_KEY = 0x636C6F636B  # "clock"

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS clockface;
CREATE TABLE IF NOT EXISTS clockface.schema_migrations (
    version int PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""

_V1 = """
CREATE TABLE clockface.terminals (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,40}$'),
    role_name text UNIQUE NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The terminal a session belongs to. SECURITY DEFINER (terminals cannot read the table
-- themselves) with a fixed search_path, so a caller cannot substitute its own objects.
CREATE FUNCTION clockface.current_terminal() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT t.name FROM clockface.terminals t WHERE t.role_name = session_user $$;

CREATE TABLE clockface.people (
    id bigserial PRIMARY KEY,
    name text UNIQUE NOT NULL,
    employee_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clockface.gallery_versions (
    id bigserial PRIMARY KEY,
    model_sha256 text NOT NULL,
    model_name text NOT NULL,
    embedding_size int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT session_user,
    note text NOT NULL DEFAULT ''
);

-- embedding: little-endian float32, as gallery/store.py writes it.
CREATE TABLE clockface.gallery_templates (
    version_id bigint NOT NULL REFERENCES clockface.gallery_versions ON DELETE CASCADE,
    person_id bigint NOT NULL REFERENCES clockface.people ON DELETE CASCADE,
    photo text NOT NULL,
    embedding bytea NOT NULL
);
CREATE INDEX gallery_templates_version ON clockface.gallery_templates (version_id);

CREATE TABLE clockface.events (
    id uuid PRIMARY KEY,
    terminal text NOT NULL DEFAULT clockface.current_terminal() REFERENCES clockface.terminals (name),
    person text NOT NULL,
    event_type text NOT NULL CHECK (event_type IN ('check-in', 'check-out', 'seen')),
    timestamp_utc timestamptz NOT NULL,
    utc_offset_minutes int NOT NULL,
    distance real NOT NULL,
    source text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_time ON clockface.events (timestamp_utc);
CREATE INDEX events_person_time ON clockface.events (person, timestamp_utc);

CREATE TABLE clockface.audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL DEFAULT session_user,
    action text NOT NULL,
    detail jsonb NOT NULL
);

-- What a terminal may read: the newest gallery version only (0 or 1 row) and its templates.
CREATE VIEW clockface.current_gallery_version AS
    SELECT v.id AS version_id, v.model_sha256, v.model_name, v.embedding_size, v.created_at
    FROM clockface.gallery_versions v
    ORDER BY v.id DESC
    LIMIT 1;

CREATE VIEW clockface.current_gallery_templates AS
    SELECT t.version_id, p.name AS person, p.employee_id, t.photo, t.embedding
    FROM clockface.gallery_templates t
    JOIN clockface.people p ON p.id = t.person_id
    WHERE t.version_id = (SELECT max(v.id) FROM clockface.gallery_versions v);
"""

_V2 = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'clockface_terminal') THEN
        CREATE ROLE clockface_terminal NOLOGIN;
    END IF;
    -- PUBLIC may CONNECT and create TEMP tables in every new database: not here.
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO clockface_terminal', current_database());
END
$$;

REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA clockface FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA clockface FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA clockface FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA clockface FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA clockface REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

GRANT USAGE ON SCHEMA clockface TO clockface_terminal;
GRANT EXECUTE ON FUNCTION clockface.current_terminal() TO clockface_terminal;
-- Not received_at (the server's clock) and nothing to read back: the push is
-- INSERT ... ON CONFLICT (id) DO NOTHING without RETURNING.
GRANT INSERT (id, terminal, person, event_type, timestamp_utc, utc_offset_minutes, distance, source)
    ON clockface.events TO clockface_terminal;
-- ON CONFLICT (id) needs SELECT on the arbiter column (and then the new row must pass a
-- SELECT policy): see events_arbiter_only below.
GRANT SELECT (id) ON clockface.events TO clockface_terminal;
GRANT SELECT ON clockface.current_gallery_version, clockface.current_gallery_templates TO clockface_terminal;

-- A terminal may INSERT only rows naming itself. No UPDATE/DELETE grant or policy.
ALTER TABLE clockface.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_insert_own ON clockface.events FOR INSERT TO clockface_terminal
    WITH CHECK (terminal = clockface.current_terminal());
-- INSERT ... ON CONFLICT (id) checks the new row against the SELECT policies, so the
-- terminals need one; this one admits only the rows the terminal itself received in its
-- current transaction (received_at is the server's clock and not insertable). A committed
-- event, its own or another terminal's, is never visible to it again.
CREATE POLICY events_arbiter_only ON clockface.events FOR SELECT TO clockface_terminal
    USING (terminal = clockface.current_terminal() AND received_at >= transaction_timestamp());
"""

# v3: erasure requests reach every terminal's own log. `central remove` writes one row per
# request; a terminal reads (id, person, with_logs) through the view, never who asked or
# when, and applies every id above the last one it applied. The guard trigger is for the
# events that are already on their way when the request is made (a batch in flight, an
# older agent that does not read erasures): an event of a person erased with their logs,
# timed before the request, is silently skipped instead of stored. Names match like
# gallery.layout.person_key (case and runs of spaces do not matter; NFC).
_V3 = """
CREATE TABLE clockface.erasures (
    id bigserial PRIMARY KEY,
    person text NOT NULL,
    with_logs boolean NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON clockface.erasures FROM PUBLIC;
REVOKE ALL ON SEQUENCE clockface.erasures_id_seq FROM PUBLIC;

CREATE FUNCTION clockface.person_key(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT lower(btrim(regexp_replace(normalize(name, NFC), '\\s+', ' ', 'g'))) $$;
CREATE INDEX erasures_person_key ON clockface.erasures (clockface.person_key(person)) WHERE with_logs;

CREATE VIEW clockface.erasure_requests AS
    SELECT e.id, e.person, e.with_logs FROM clockface.erasures e;
REVOKE ALL ON clockface.erasure_requests FROM PUBLIC;
GRANT SELECT ON clockface.erasure_requests TO clockface_terminal;

-- SECURITY DEFINER: the inserting terminal cannot read clockface.erasures itself.
CREATE FUNCTION clockface.skip_erased_event() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM clockface.erasures e
        WHERE e.with_logs
          AND clockface.person_key(e.person) = clockface.person_key(NEW.person)
          AND NEW.timestamp_utc <= e.requested_at
    ) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION clockface.person_key(text), clockface.skip_erased_event() FROM PUBLIC;
CREATE TRIGGER events_skip_erased BEFORE INSERT ON clockface.events
    FOR EACH ROW EXECUTE FUNCTION clockface.skip_erased_event();
"""

MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2, 3: _V3}
"""``MIGRATIONS[n]`` takes a database from version n-1 to n. Never edit a released one."""
SCHEMA_VERSION = max(MIGRATIONS)


def schema_version(conn: psycopg.Connection) -> int:
    """The version the database is at; 0 for one that was never initialised."""
    row = conn.execute("SELECT to_regclass('clockface.schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT coalesce(max(version), 0) FROM clockface.schema_migrations").fetchone()
    return int(found[0]) if found else 0


def check_not_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise CentralError(
            f"central schema is v{version}, newer than this clockface understands (v{SCHEMA_VERSION}): upgrade clockface"
        )


def migrate(conn: psycopg.Connection) -> list[int]:
    """Bring the database to SCHEMA_VERSION; the versions applied (empty when already current).

    Each version runs in its own transaction with its schema_migrations row and an
    audit_log row. Needs an admin (the owner of the objects; CREATEROLE for v2).
    """
    applied: list[int] = []
    was_autocommit = conn.autocommit
    if not was_autocommit:
        conn.commit()  # each version must be a transaction of its own, not a savepoint in the caller's
        conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        with conn.transaction():
            conn.execute(_BOOTSTRAP)
        version = schema_version(conn)
        check_not_newer(version)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with conn.transaction():
                conn.execute(MIGRATIONS[target])
                conn.execute("INSERT INTO clockface.schema_migrations (version) VALUES (%s)", (target,))
                conn.execute(
                    "INSERT INTO clockface.audit_log (action, detail) VALUES ('migrate', jsonb_build_object('from', %s::int, 'to', %s::int))",
                    (target - 1, target),
                )
            applied.append(target)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.autocommit = was_autocommit
    return applied
