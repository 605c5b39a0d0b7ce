"""Password source, session fingerprint and login throttle, without a server."""

from __future__ import annotations

import os
from pathlib import Path

from logs.web import write_password_file
from logs.web_auth import LoginThrottle, PasswordSource, fingerprint


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_password_file_is_read_again_when_replaced(tmp_path: Path) -> None:
    path = tmp_path / "web-password"
    source = PasswordSource(path=path)
    assert source.current() is None and source.datasette_value() == {"$file": str(path)}
    write_password_file(path, "pbkdf2_sha256$1$salt$old")
    assert source.current() == "pbkdf2_sha256$1$salt$old"
    stat = os.stat(path)
    write_password_file(path, "pbkdf2_sha256$1$salt$new")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the new inode still tells
    assert source.current() == "pbkdf2_sha256$1$salt$new"
    path.unlink()
    assert source.current() is None


def test_fingerprint_changes_with_the_hash_and_hides_it() -> None:
    a, b = fingerprint("pbkdf2_sha256$1$salt$aaaa"), fingerprint("pbkdf2_sha256$1$salt$bbbb\n")
    assert a != b and len(a) == 16 and "aaaa" not in a
    assert fingerprint("pbkdf2_sha256$1$salt$bbbb") == b


def test_throttle_blocks_after_k_failures_until_the_window_passes() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
        clock.now += 5
    assert throttle.retry_after("10.0.0.1") == 45  # the first failure leaves the window at 1060
    assert throttle.retry_after("10.0.0.2") is None  # per client address
    clock.now += 45
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None and len(throttle) == 0


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_failures=2, window=60, max_clients=100, clock=Clock())
    for i in range(10_000):
        throttle.failed(f"client-{i}")
        throttle.failed("persistent")  # failing recently keeps it
    assert len(throttle) == 100
    assert throttle.retry_after("persistent") is not None and throttle.retry_after("client-0") is None
    assert max(len(f) for f in throttle._failures.values()) == 2
