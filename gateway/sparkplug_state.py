"""Per-edge-node and per-device Sparkplug session state, and the rebirth throttle.

A node is ``unknown`` until its NBIRTH, then ``born`` until a NDEATH whose bdSeq matches the NBIRTH's (then
``dead``). A device is ``born`` from its DBIRTH until its DDEATH or the node's death/rebirth. The counters
are what the status topic shows per node (``sources.<id>.nodes.<node>``).

``RebirthThrottle`` decides whether a rebirth request may go out now: never while one is outstanding (sent,
no NBIRTH since) and younger than the hold-off, never within the hold-off of the last one, and never more than
the ceiling in any 60 s. Suppressed requests are counted, so a storm shows up as a number, not as traffic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from datafactory.config.models import SignalBinding

CEILING_WINDOW_S = 60.0


@dataclass(slots=True)
class RebirthThrottle:
    holdoff_s: float
    max_per_minute: int | None
    outstanding_since: float | None = None
    last_sent: float | None = None
    sent: deque[float] = field(default_factory=deque)
    suppressed: int = 0
    pending: str | None = None  # why a suppressed request is still wanted; retried when the throttle allows

    def allow(self, now: float, why: str) -> bool:
        if self.last_sent is not None and now - self.last_sent < self.holdoff_s:
            return self._suppress(why)  # also "one outstanding": an unanswered request is younger than this
        while self.sent and now - self.sent[0] >= CEILING_WINDOW_S:
            self.sent.popleft()
        if self.max_per_minute is not None and len(self.sent) >= self.max_per_minute:
            return self._suppress(why)
        self.last_sent = self.outstanding_since = now
        self.sent.append(now)
        self.pending = None
        return True

    def _suppress(self, why: str) -> bool:
        if self.pending is None:
            self.suppressed += 1  # one wanted-but-withheld request, however many messages asked for it
            self.pending = why
        return False

    def answered(self) -> None:
        """An NBIRTH arrived: the node re-announced everything, nothing is outstanding or wanted any more."""
        self.outstanding_since = None
        self.pending = None


@dataclass(slots=True)
class DeviceState:
    born: bool = False
    births: int = 0
    deaths: int = 0
    aliases: dict[int, str] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)  # metric name → datatype from the birth
    born_bound: dict[str, int] = field(default_factory=dict)  # metric name → binding index, born this session
    # alias → binding index of the bound Float/Double metrics born with an alias: the data fast path's lookup,
    # rebuilt at every birth (the only time aliases, datatypes or bindings change)
    float_aliases: dict[int, int] = field(default_factory=dict)
    layout: Any = None  # gateway.sparkplug_fast.Layout of the repeating data message, once one is recorded
    lean_size: int = 0  # size of the last message the lean path read, and the size a layout was last tried for
    layout_tried: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": "born" if self.born else "dead" if self.births else "unknown",
            "births": self.births,
            "deaths": self.deaths,
            "metrics": len(self.types),
            "bound": len(self.born_bound),
        }


@dataclass(slots=True)
class NodeState:
    throttle: RebirthThrottle
    born: bool = False
    bd_seq: int | None = None
    seq: int = -1
    lost_seqs: int = 0  # undecodable messages since the last good one: each took a sequence number we cannot see
    last_time_us: int = 0  # newest sample time of this session, so a stale DEATH timestamp cannot precede data
    births: int = 0
    deaths: int = 0
    stale_deaths: int = 0
    seq_gaps: int = 0
    undecodable: int = 0
    unborn_data: int = 0
    rebirth_requests: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    last_dead_letter: str | None = None
    devices: dict[str, DeviceState] = field(default_factory=dict)  # "" = the node's own metrics

    def device(self, device_id: str) -> DeviceState:
        dev = self.devices.get(device_id)
        if dev is None:
            dev = self.devices[device_id] = DeviceState()
        return dev

    def dead_letter(self, reason: str, detail: str) -> None:
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1
        self.last_dead_letter = f"{reason}: {detail}"[:300]

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": "born" if self.born else "dead" if self.births else "unknown",
            "bd_seq": self.bd_seq,
            "seq": self.seq if self.seq >= 0 else None,
            "births": self.births,
            "deaths": self.deaths,
            "stale_deaths": self.stale_deaths,
            "seq_gaps": self.seq_gaps,
            "undecodable": self.undecodable,
            "unborn_data": self.unborn_data,
            "rebirth_requests": self.rebirth_requests,
            "rebirths_suppressed": self.throttle.suppressed,
            "rebirth_outstanding": self.throttle.outstanding_since is not None,
            "dead_letters": dict(self.dead_letters),
            "last_dead_letter": self.last_dead_letter,
            "devices": {d or "(node)": s.as_dict() for d, s in sorted(self.devices.items())},
        }


def slug(text: str) -> str:
    """Lower-case, every run of characters outside a-z/0-9 becomes one ``_``, no ``_`` at either end."""
    out: list[str] = []
    gap = False
    for ch in text.lower():
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            if gap and out:
                out.append("_")
            out.append(ch)
            gap = False
        else:
            gap = True
    return "".join(out)


def learned_name(node: str, device: str, metric: str, taken: set[str]) -> str | None:
    """The signal name for a learned metric: ``slug(node/device/metric)`` (device left out for node metrics),
    at most 64 characters; a name that had to be cut, or that is taken, gets ``-`` + 8 hex digits of a hash of
    the full key instead of its tail. None if even that collides (the metric is then not learned)."""
    import hashlib

    base = slug("/".join(p for p in (node, device, metric) if p)) or "metric"
    if len(base) <= 64 and base not in taken:
        return base
    digest = hashlib.sha256(f"{node}\0{device}\0{metric}".encode()).hexdigest()[:8]
    name = f"{base[:55]}-{digest}"
    return None if name in taken else name


def binding_with(binding: SignalBinding, unit: str, description: str) -> SignalBinding:
    """The binding with the unit/description a birth announced, where the config left them empty."""
    update: dict[str, str] = {}
    if unit and not binding.unit:
        update["unit"] = unit
    if description and not binding.description:
        update["description"] = description
    return binding.model_copy(update=update) if update else binding
