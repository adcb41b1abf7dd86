"""A replica's circuit breaker: stop sending it requests after consecutive failures, until /health says it is back.

    closed ──(N failures in a row)──▶ open ──(a /health probe started after opening answers 200)──▶ half-open
      ▲                                ▲                                                              │
      └──────────(a request succeeds)──┼──────────────────────────────────────────────────────────────┤
                                       └──────────────────(its next request fails)────────────────────┘

Requests fail over to other replicas before the first byte reaches the client, so a broken replica costs
the client nothing but time; the breaker stops that time being spent on every request. The health prober
is the way back (vLLM answers /health only when its engine runs), and a half-open replica gets one chance:
a single failure opens it again, without waiting for N more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """Counts one replica's consecutive request failures; `threshold` in a row open it."""

    threshold: int
    state: BreakerState = "closed"
    consecutive_failures: int = 0
    opened_at: float = field(default=0.0)  # monotonic time of the last opening

    @property
    def allows_traffic(self) -> bool:
        return self.state != "open"

    def record_success(self) -> None:
        """The replica answered (any status below 500): it works."""
        self.consecutive_failures = 0
        self.state = "closed"

    def record_failure(self) -> bool:
        """The replica failed a request; True when this failure opened the breaker."""
        self.consecutive_failures += 1
        if self.state == "open":
            return False
        if self.state == "half_open" or self.consecutive_failures >= self.threshold:
            self.state = "open"
            self.opened_at = time.monotonic()
            return True
        return False

    def probe_succeeded(self, probe_started_at: float) -> bool:
        """A /health probe answered 200; True when that let an open breaker try again (half-open).

        Only a probe that started after the breaker opened counts: one already in flight when the failures
        happened says nothing about the replica's state since.
        """
        if self.state != "open" or probe_started_at < self.opened_at:
            return False
        self.state = "half_open"
        return True
