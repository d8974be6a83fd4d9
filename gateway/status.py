"""The gateway's retained status message (``df/v1/<enterprise>/<site>/_gw/<gateway>/status``).

It is also the last will, ``{"online": false}``, so a gateway that dies is shown offline by the broker.
Fields: ``online``, ``gateway``, ``time``, ``started``, ``config_version``, ``config_error`` (why the last
deployed config was rejected, else null), ``samples_per_s``, ``samples_in``, ``published_samples``,
``buffer`` {``batches``, ``samples``, ``bytes``, ``max_bytes``}, ``dropped`` {``buffer_overflow``},
and per source ``sources.<id>`` {``kind``, ``state`` (connecting|connected|disconnected|failed|stopped),
``since``, ``last_error`` (why the source is not connected now; null once it is), ``next_attempt`` (UTC time
of the next connection attempt while disconnected or failed), ``attempts`` (connection attempts since start),
``reconnects``, and the adapter's problem counters such as ``rejected``, ``items_refused``, ``seq_gaps``,
``rebirth_requests``, and nested details such as Sparkplug's per-node ``nodes.<node>`` {``state``, ``bd_seq``,
``seq``, counters, ``devices.<device>``}}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class SourceState:
    kind: str
    state: str = "connecting"
    since: str = field(default_factory=utc_now_iso)
    last_error: str | None = None
    next_attempt: str | None = None
    attempts: int = 0
    reconnects: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # nested per-source state, e.g. Sparkplug ``nodes``

    def set(self, state: str, error: str | None = None, *, retry_in_s: float | None = None) -> None:
        """Enter ``state``. Connecting keeps the error being retried; connected clears it (it is history, in the
        log); disconnected/failed record the reason and, with ``retry_in_s``, when the next attempt is."""
        if state != self.state:
            self.state = state
            self.since = utc_now_iso()
        if state == "connected":
            self.last_error = None
        elif error is not None:
            self.last_error = error
        self.next_attempt = (
            (datetime.now(UTC) + timedelta(seconds=retry_in_s)).isoformat(timespec="seconds")
            if retry_in_s is not None and state in ("disconnected", "failed")
            else None
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "state": self.state,
            "since": self.since,
            "last_error": self.last_error,
            "next_attempt": self.next_attempt,
            "attempts": self.attempts,
            "reconnects": self.reconnects,
            **self.counters,
            **self.details,
        }


def offline_payload(gateway: str) -> bytes:
    return orjson.dumps({"online": False, "gateway": gateway})


def status_payload(
    *,
    gateway: str,
    started: str,
    config_version: str,
    config_error: str | None,
    samples_per_s: float,
    samples_in: int,
    published_samples: int,
    buffer: dict[str, int],
    dropped_overflow: int,
    sources: dict[str, SourceState],
    online: bool = True,
) -> bytes:
    return orjson.dumps(
        {
            "online": online,
            "gateway": gateway,
            "time": utc_now_iso(),
            "started": started,
            "config_version": config_version,
            "config_error": config_error,
            "samples_per_s": round(samples_per_s, 1),
            "samples_in": samples_in,
            "published_samples": published_samples,
            "buffer": buffer,
            "dropped": {"buffer_overflow": dropped_overflow},
            "sources": {sid: s.as_dict() for sid, s in sources.items()},
        }
    )
