"""``[central]``: where this terminal's attendance goes, and how often.

Off unless ``host`` is set. No password here, ever: libpq reads it from the
passfile (pgpass format, mode 0600) or from the systemd credential
``$CREDENTIALS_DIRECTORY/central.pgpass`` (``LoadCredential=`` in
clockface-sync.service), so it is never in the TOML, argv or the journal.
This module imports neither psycopg nor logs.central: device/config.py loads it
on every command, including `clockface run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from logs.settings import PORT, SettingsError

DEFAULT_PASSFILE = Path("/etc/clockface/central.pgpass")
CREDENTIAL_NAME = "central.pgpass"  # LoadCredential=central.pgpass:... in the unit
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


@dataclass(frozen=True)
class CentralSettings:
    host: str = ""  # the central PostgreSQL; "" keeps this terminal on its own
    port: PORT = 5432
    database: Annotated[str, Meta(min_length=1)] = "clockface"
    user: str = ""  # this terminal's role, from `clockface central add-terminal`
    passfile: Path = DEFAULT_PASSFILE
    sslmode: SslMode = "verify-full"
    sslrootcert: Path | None = None  # the CA that signed the server's certificate
    interval_s: Annotated[float, Meta(ge=1, le=3600)] = 30.0  # push + gallery poll
    batch_size: Annotated[int, Meta(ge=1, le=10000)] = 500

    def __post_init__(self) -> None:
        if self.host and not self.user:
            raise SettingsError.about(
                "central.user", self.user, "is needed when central.host is set (the role add-terminal printed)"
            )

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    def credentials_file(self, env: Mapping[str, str]) -> Path:
        """The systemd credential when the unit loaded one, else the configured passfile."""
        directory = env.get("CREDENTIALS_DIRECTORY")
        if directory and (Path(directory) / CREDENTIAL_NAME).is_file():
            return Path(directory) / CREDENTIAL_NAME
        return self.passfile
