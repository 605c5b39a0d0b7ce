"""sd_notify without a dependency: READY=1, WATCHDOG=1 and STATUS= to systemd.

The socket path comes from $NOTIFY_SOCKET, read once by the caller at the CLI
edge. Without it (not under systemd) every call is a cheap no-op.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = None
        if address:
            # A leading "@" is Linux's abstract namespace.
            self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None  # seconds; ping at half the timeout
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Notifier:
        usec = env.get("WATCHDOG_USEC")
        return cls(env.get("NOTIFY_SOCKET"), int(usec) if usec and usec.isdigit() else None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), self._address)
            return True
        except OSError:
            return False

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
