"""The central PostgreSQL of a fleet of terminals (issue 13).

Each terminal's SQLite log stays its local evidence; the centre holds every
terminal's events, the people and the published gallery versions. This package
is the centre's side that every fleet component shares: how to connect
(connect.py), the versioned schema (schema.py) and the per-terminal roles
(roles.py). psycopg is imported lazily, so importing this package costs a
terminal that is not in a fleet nothing.
"""

from logs.central.connect import CentralError, CentralTarget, connect

__all__ = ["CentralError", "CentralTarget", "connect"]
