"""Where `log.info(...)` lines of the stores go: stderr at a shell, the journal under systemd.

Configured at the CLI entry (the root group, for the length of the command), never on import: library
code only calls `logging.getLogger(__name__)`. Under systemd (JOURNAL_STREAM or
INVOCATION_ID set) python3-systemd's JournalHandler sends each record with its
priority, so `journalctl -p warning` filters them; it is an apt package on the
device (the venv sees it through --system-site-packages), imported lazily, and
when it is missing the records still reach the journal as stderr lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping

SYSTEMD_ENV = ("JOURNAL_STREAM", "INVOCATION_ID")
STREAM_FORMAT = "clockface: %(message)s"
SYSLOG_IDENTIFIER = "clockface"


def under_systemd(env: Mapping[str, str]) -> bool:
    """systemd sets INVOCATION_ID for every unit it runs and JOURNAL_STREAM when stderr is the journal."""
    return any(env.get(name) for name in SYSTEMD_ENV)


def journal_handler() -> logging.Handler | None:
    """python3-systemd's JournalHandler, or None where it is not installed."""
    try:
        from systemd.journal import JournalHandler  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)


def make_handler(env: Mapping[str, str]) -> logging.Handler:
    handler = journal_handler() if under_systemd(env) else None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(STREAM_FORMAT))
    return handler


@contextlib.contextmanager
def logging_configured(env: Mapping[str, str] = os.environ, level: int = logging.INFO) -> Iterator[logging.Handler]:
    """Root logger -> one handler (stderr or the journal) for the duration of a command.

    Undone afterwards, so a command run in-process (click's test runner, the
    USB-stick unit calling enroll) leaves logging as it found it.
    """
    root = logging.getLogger()
    handler, old_level = make_handler(env), root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
