"""How long the agent waits after a failure: exponential back-off with full jitter, capped.

Full jitter (a uniform draw in ``[0, min(cap, base * 2**attempt)]``) rather than a
fixed doubling: when the central server comes back after an outage, fifty
terminals that all failed at the same moment must not all retry at the same
moment. Pure maths; the random source is passed in, so tests seed it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def ceiling(attempt: int, base_s: float, cap_s: float) -> float:
    """The longest wait after *attempt* consecutive failures (0 = the first): ``min(cap, base * 2**attempt)``."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    # 2**attempt overflows a float long after it passed any cap: stop doubling at the cap.
    bound = base_s
    for _ in range(attempt):
        if bound >= cap_s:
            break
        bound *= 2
    return min(cap_s, bound)


def full_jitter(attempt: int, base_s: float, cap_s: float, draw: float) -> float:
    """The wait for a uniform *draw* in [0, 1): a point between 0 and :func:`ceiling`."""
    if not 0.0 <= draw <= 1.0:
        raise ValueError(f"draw must be in [0, 1], got {draw}")
    return draw * ceiling(attempt, base_s, cap_s)


@dataclass(frozen=True)
class Backoff:
    """The agent's retry schedule. The cap keeps a terminal that was offline for a day
    catching up within minutes of the network's return."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(f"need 0 < base_s <= cap_s, got {self.base_s}, {self.cap_s}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        return full_jitter(attempt, self.base_s, self.cap_s, rng.random())
