"""What the agent last knew, for `clockface sync --status` and for systemd's STATUS= line.

The agent writes ``<data_dir>/sync-status.json`` after every cycle, atomically
(a temp file in the same folder, fsync, rename), so `--status` never reads half a
file and never needs the network or the agent's process. The live backlog is
counted from the attendance log by the reader; the file's number is the agent's
view at ``updated_utc``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from device.sync.statefile import write_json_atomically
from logs.store import format_utc, parse_utc

STATUS_FILE_NAME = "sync-status.json"


@dataclass(frozen=True)
class SyncStatus:
    updated_utc: datetime
    backlog: int  # events not yet confirmed by the centre, when the file was written
    last_success_utc: datetime | None = None  # the last cycle that pushed everything it had
    last_error: str | None = None  # one line; None once a cycle succeeds again
    central_gallery_version: int | None = None  # the central gallery version this terminal holds
    gallery_refused: str | None = None  # why the newest central version was not applied (one line)
    pushed: int = 0  # events pushed since the agent started
    erasures_applied: int = 0  # central erasure requests this terminal has applied (device/sync/erasures.py)
    erasures_unsupported: bool = False  # the centre's schema predates erasure requests (< v3)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("updated_utc", "last_success_utc"):
            out[key] = format_utc(out[key]) if out[key] is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncStatus:
        return cls(
            updated_utc=parse_utc(data["updated_utc"]),
            backlog=int(data["backlog"]),
            last_success_utc=parse_utc(data["last_success_utc"]) if data.get("last_success_utc") else None,
            last_error=data.get("last_error"),
            central_gallery_version=data.get("central_gallery_version"),
            gallery_refused=data.get("gallery_refused"),
            pushed=int(data.get("pushed", 0)),
            erasures_applied=int(data.get("erasures_applied", 0)),
            erasures_unsupported=bool(data.get("erasures_unsupported", False)),
        )

    def line(self) -> str:
        """One line for systemd's STATUS= and the journal: backlog first, then the news."""
        parts = [f"backlog {self.backlog}"]
        if self.last_error:
            parts.append(f"error: {self.last_error}")
        if self.last_success_utc is not None:
            parts.append(f"last push {format_utc(self.last_success_utc)[:19]}Z")
        else:
            parts.append("no push yet")
        if self.central_gallery_version is not None:
            parts.append(f"gallery v{self.central_gallery_version}")
        if self.gallery_refused:
            parts.append(f"gallery refused: {self.gallery_refused}")
        if self.erasures_applied:
            parts.append(f"{self.erasures_applied} erasure{'s' if self.erasures_applied != 1 else ''} applied")
        if self.erasures_unsupported:
            parts.append("central schema predates erasures: run clockface central init there")
        return "; ".join(parts)


def status_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATUS_FILE_NAME


def write_status(path: Path, status: SyncStatus) -> None:
    """Replace *path* with *status* in one rename: a reader sees the old file or the new, never a mix."""
    write_json_atomically(path, status.to_dict())


def read_status(path: Path) -> SyncStatus | None:
    """The last status the agent wrote, or None when it has not run (or the file is unreadable)."""
    try:
        return SyncStatus.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
