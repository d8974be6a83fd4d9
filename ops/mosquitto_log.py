"""Parse a Mosquitto 2 log (``log_timestamp true``: epoch seconds) into security events.

Lines used (Mosquitto 2.0.11 wording; ``broker config`` enables the levels that carry them):

    New client connected from 10.0.0.5:51234 as gw-a (p5, c1, k60, u'acme.dg-1.gw-1').     notice
    Sending CONNACK to 10.0.0.9 (0, 135)                  refused CONNECT (4/5 in MQTT 3.1.1, 134/135/138 in 5)
    Denied PUBLISH from gw-a (d0, q1, r0, m1, 'df/v1/other/site/…', ... (12 bytes))        debug

A refused CONNECT is logged before the client id is known, so authentication failures are attributed to the
address. Publishes are attributed to the user name the client id last connected with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_LINE = re.compile(r"^(\d{9,11}): (.*)$")
_CONNECTED = re.compile(r"^New client connected from (\S+) as (\S+) \(p\d+, c\d+, k\d+(?:, u'([^']*)')?\)\.$")
_CONNACK = re.compile(r"^Sending CONNACK to (\S+) \(\d+, (\d+)\)$")
_DENIED = re.compile(r"^Denied PUBLISH from (\S+) \(d\d, q\d, r\d, m\d+, '([^']*)'")
REFUSED_CONNACK = frozenset({4, 5, 134, 135, 138})


@dataclass(frozen=True)
class LogEvent:
    time: datetime
    kind: str  # 'connected', 'auth_failure', 'publish_denied'
    client: str  # client id, or the address for auth failures
    user: str | None
    address: str | None = None
    topic: str | None = None


def parse_lines(lines: Iterator[str]) -> Iterator[LogEvent]:
    users: dict[str, str | None] = {}
    addresses: dict[str, str] = {}
    for raw in lines:
        m = _LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        time = datetime.fromtimestamp(int(m.group(1)), UTC)
        message = m.group(2)
        if c := _CONNECTED.match(message):
            address, client, user = c.group(1).rsplit(":", 1)[0], c.group(2), c.group(3)
            users[client], addresses[client] = user, address
            yield LogEvent(time, "connected", client, user, address)
        elif c := _CONNACK.match(message):
            if int(c.group(2)) in REFUSED_CONNACK:
                who = c.group(1)
                yield LogEvent(time, "auth_failure", who, users.get(who), addresses.get(who, who))
        elif c := _DENIED.match(message):
            client = c.group(1)
            yield LogEvent(time, "publish_denied", client, users.get(client), addresses.get(client), c.group(2))


def read_events(path: Path, since: datetime, until: datetime) -> list[LogEvent]:
    """Events in [since, until); the whole file is read so clients connected earlier are still attributed."""
    with path.open(encoding="utf-8", errors="replace") as f:
        return [e for e in parse_lines(iter(f)) if since <= e.time < until]
