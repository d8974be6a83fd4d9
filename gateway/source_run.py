"""One configured source as the runner keeps it across reconnects: its adapter of the moment, its connection state
for the status, whether its gap ledger row says it is delivering, and which failures were already logged, so a
device that stays down is reported once per reason, not once per attempt."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from datafactory.errors import ConnectionLost
from gateway.gaps import Restamper, Signal
from gateway.sources import SourceAdapter
from gateway.status import SourceState
from gateway.supervisor import Backoff

_log = logging.getLogger("gateway.runner")  # the runner's log: operators filter on it

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 5.0
FAILED_RETRY_S = 900.0
"""A source that needs an operator is tried again every 15 min: four attempts an hour stay below the lockout
threshold of the servers we know, and a fix on the server side is picked up without a restart."""


@dataclass(slots=True)
class SourceRun:
    config: Any
    state: SourceState
    adapter: SourceAdapter | None = None
    logged_failures: set[str] = field(default_factory=set)
    delivering: bool = False  # connected, and its ledger row says so
    restamper: Restamper = field(default_factory=Restamper)

    def failed(self, err: Exception, backoff: Backoff, *, opened: bool, failed_retry_s: float) -> float:
        """Record why a source stopped and return how long to wait before the next attempt. Each distinct
        reason is logged once until the source connects again; an unexpected error's traceback is kept once."""
        sid = self.config.id
        if isinstance(err, ConnectionLost) and not err.retryable:
            delay = failed_retry_s
            reason = str(err)
            state = "failed"
            if reason not in self.logged_failures:
                _log.error("source %s failed: %s; next attempt in %.0f s or on a config change", sid, reason, delay)
        elif isinstance(err, ConnectionLost):
            delay = backoff.next()
            reason = str(err)
            state = "disconnected"
            if opened or reason not in self.logged_failures:
                _log.warning("source %s: %s; retrying in %.1f s", sid, reason, delay)
        else:
            delay = backoff.next()
            reason = f"{type(err).__name__}: {err}"
            state = "disconnected"
            if reason not in self.logged_failures:
                _log.error("source %s failed unexpectedly (%s); retrying in %.1f s", sid, reason, delay, exc_info=err)
        self.logged_failures.add(reason)
        self.state.set(state, reason, retry_in_s=delay)
        return delay


def signals_of(adapter: SourceAdapter) -> list[Signal]:
    """The (cell, signal) pairs ``adapter`` delivers."""
    return [(b.cell, b.signal) for b in adapter.bindings()]
