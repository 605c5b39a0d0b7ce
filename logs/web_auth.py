"""Sessions and logins for `clockface web`: the parts with no Datasette in them.

* :class:`PasswordSource` says where the admin's hash lives. A password file
  is re-read when it changes (mtime, size or inode: ``set-password`` replaces
  it atomically), so a new password works at once on a running server.
  Datasette itself only ever sees ``{"$file": ...}`` or ``{"$env": ...}``
  (its secret-configuration mechanism), never the hash, so ``/-/metadata``
  cannot show it.
* :func:`fingerprint` of the hash goes into every session cookie; a cookie
  whose fingerprint is not the current one is a session of an old password,
  and is logged out.
* :class:`LoginThrottle` slows password guessing per client address, in
  bounded memory.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSWORD_ENV = "CLOCKFACE_WEB_PASSWORD_HASH"
SESSION_MAX_AGE = 12 * 3600  # one working day; the cookie's Max-Age and the signed expiry agree


def fingerprint(password_hash: str) -> str:
    """A short, one-way tag of the hash: changes whenever the password does, reveals nothing of it."""
    return hashlib.sha256(("clockface-session:" + password_hash.strip()).encode("utf-8")).hexdigest()[:16]


@dataclass
class PasswordSource:
    """The admin's password hash: from a file (the usual case) or from the environment ([web] password_hash)."""

    path: Path | None = None
    env_var: str = PASSWORD_ENV
    _seen: tuple[int, int, int] | None = field(default=None, init=False, repr=False)
    _hash: str | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_hash(cls, password_hash: str, env_var: str = PASSWORD_ENV) -> PasswordSource:
        """A fixed hash, handed to this process's Datasette through an environment variable."""
        os.environ[env_var] = password_hash.strip()
        return cls(path=None, env_var=env_var)

    def datasette_value(self) -> dict[str, str]:
        """What goes into Datasette's plugin configuration in place of the hash."""
        return {"$file": str(self.path)} if self.path is not None else {"$env": self.env_var}

    def config(self) -> dict[str, str]:
        """How our own plugin finds the hash again (a path or a variable name: no secret)."""
        return {"password_file": str(self.path)} if self.path is not None else {"password_env": self.env_var}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PasswordSource:
        if config.get("password_file"):
            return cls(path=Path(config["password_file"]))
        return cls(path=None, env_var=config.get("password_env") or PASSWORD_ENV)

    def current(self) -> str | None:
        """The hash now, or None when none is set; a file is read again only when it has changed."""
        if self.path is None:
            return (os.environ.get(self.env_var) or "").strip() or None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._hash = None, None
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._seen:
            try:
                text = self.path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                return None
            self._seen, self._hash = key, text or None
        return self._hash


@dataclass
class LoginThrottle:
    """After ``max_failures`` wrong logins within ``window`` seconds a client must wait.

    Memory is bounded twice: at most ``max_clients`` addresses (least recently
    failed evicted first) and at most ``max_failures`` timestamps each.
    """

    max_failures: int = 5
    window: float = 300.0
    max_clients: int = 1024
    clock: Callable[[], float] = time.monotonic
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict, init=False, repr=False)

    def retry_after(self, client: str) -> int | None:
        """Seconds until *client* may try again, or None when it may try now."""
        failures = self._failures.get(client)
        if not failures:
            return None
        now = self.clock()
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        if len(failures) < self.max_failures:
            return None
        return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, client: str) -> None:
        failures = self._failures.pop(client, None) or deque(maxlen=self.max_failures)
        failures.append(self.clock())
        self._failures[client] = failures  # most recent last
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def __len__(self) -> int:
        return len(self._failures)
