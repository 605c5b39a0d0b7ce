"""A TCP proxy on 127.0.0.1 that cuts connections at random points: the network dropped mid-batch.

Why a proxy and not a mock: the agent's libpq must see what it sees on a real
network, a socket that dies at any byte, in the middle of a batch, between
the server's COMMIT and its reply, or during the login. Each accepted
connection is given a byte budget drawn from a seeded RNG; when the bytes
passed in either direction reach it, both sides are closed hard (RST). The
faults are bounded so the test ends: at most ``max_cuts`` cuts, and none after
``cut_for_s`` seconds; after that the proxy only forwards.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class CutPlan:
    """How the faults are drawn: each connection may be cut after 1..max_bytes bytes."""

    seed: int = 13
    max_cuts: int = 12
    cut_for_s: float = 20.0
    min_bytes: int = 200
    max_bytes: int = 150_000
    cut_probability: float = 0.8  # a connection is spared with 1 - p


@dataclass
class _Link:
    budget: int | None  # bytes until the cut; None: never cut
    passed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class CuttingProxy:
    """``with CuttingProxy(upstream_port, plan) as proxy:`` connect to ``proxy.port`` instead."""

    def __init__(self, upstream_port: int, plan: CutPlan, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.cuts = 0
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._started = time.monotonic()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def done_cutting(self) -> bool:
        return self.cuts >= self.plan.max_cuts or time.monotonic() - self._started >= self.plan.cut_for_s

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _hard_close(sock)

    # --- plumbing -------------------------------------------------------------
    def _budget(self) -> int | None:
        with self._lock:
            if self.done_cutting or self.rng.random() >= self.plan.cut_probability:
                return None
            return self.rng.randint(self.plan.min_bytes, self.plan.max_bytes)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _hard_close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets += [client, server]
            link = _Link(self._budget())
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink, link), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, link: _Link) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                with link.lock:
                    if link.budget is not None and link.passed + len(data) >= link.budget:
                        # Forward part of it, then die: the cut lands inside a message.
                        sink.sendall(data[: max(0, link.budget - link.passed)])
                        link.budget = None
                        self._cut(source, sink)
                        return
                    link.passed += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _hard_close(source)
            _hard_close(sink)

    def _cut(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            self.cuts += 1
        _hard_close(a)
        _hard_close(b)


def _hard_close(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped link looks to the peer, not a polite FIN.

    shutdown(SHUT_RD) first: a close() alone does not wake the other pump thread
    blocked in recv() on this socket, and until it wakes the kernel keeps the
    socket (and the peer's connection) alive, which is a black hole, not a cut.
    """
    for step in (
        lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)),
        lambda: sock.shutdown(socket.SHUT_RD),
        sock.close,
    ):
        with contextlib.suppress(OSError):
            step()
