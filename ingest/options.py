"""What an ingest worker is told: endpoints, subscription, batching, validation window and limits.

Every option has a default that suits one worker on one plant; the CLI exposes each one. Constructing options
does no I/O.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from datafactory.contract.topics import GATEWAY_LEVEL, PREFIX
from datafactory.errors import ConfigError
from datafactory.settings import DEFAULT_DATABASE_URL, DEFAULT_MQTT_URL

_CELL_TOPIC_LEVELS = 8  # df/v1/e/s/a/l/c/kind
_GATEWAY_TOPIC_LEVELS = 7  # df/v1/e/s/_gw/gw/kind
# "auto": MQTT 5, and MQTT 3.1.1 only if the broker answers that it does not speak 5 (the embedded amqtt broker).
MQTT_PROTOCOLS = ("auto", "5", "3.1.1")
MAX_WRITERS = 8


def default_worker_name() -> str:
    return f"ingest-{socket.gethostname()}"


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    """Settings of one ingest worker. ``worker`` names the MQTT session: keep it stable across restarts."""

    database_url: str = DEFAULT_DATABASE_URL
    mqtt_url: str = DEFAULT_MQTT_URL
    mqtt_password: str | None = None
    # Everything below this filter is ingested. Tests use df/v1/<enterprise>/#.
    topic_filter: str = f"{PREFIX}/#"
    # With a share group, workers of the same group split the data between them ($share/<group>/<filter>).
    share_group: str | None = None
    worker: str = field(default_factory=default_worker_name)
    session_expiry_s: int = 3600  # how long the broker keeps our unacknowledged messages while we are away
    # MQTT v5 Receive Maximum: the broker keeps at most this many unacknowledged messages in flight to us,
    # which bounds our memory and lets a batch hold many messages (Mosquitto's default would be 20).
    receive_maximum: int = 2000
    # MQTT_PROTOCOLS: "5" refuses to run without MQTT 5; "3.1.1" never asks for it (no receive maximum, no expiry).
    mqtt_protocol: str = "auto"
    batch_samples: int = 20_000
    batch_wait_s: float = 0.2
    # Writer lanes: threads with a database connection each. Two let one lane's batch be stored while the other
    # prepares the next, so the database does not wait on Python between batches; more rarely pay.
    writers: int = 2
    auto_register: bool = True
    max_past_s: float = 3650 * 86_400.0  # older samples are dead-lettered as timestamp_out_of_window
    max_future_s: float = 86_400.0
    late_margin_s: float = 60.0
    allowed_plants: frozenset[str] | None = None  # "enterprise" or "enterprise/site"; None accepts all
    health_interval_s: float = 5.0

    def __post_init__(self) -> None:
        problems = []
        if self.mqtt_protocol not in MQTT_PROTOCOLS:
            problems.append(
                ("mqtt_protocol", f"must be one of {', '.join(MQTT_PROTOCOLS)}, not {self.mqtt_protocol!r}")
            )
        if not 1 <= self.writers <= MAX_WRITERS:
            problems.append(("writers", f"must be between 1 and {MAX_WRITERS}, not {self.writers}"))
        if problems:
            raise ConfigError("ingest options", problems)

    @property
    def client_id(self) -> str:
        return f"df-ingest-{self.worker}"

    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe to.

        Without a share group: the filter itself. With one, data is shared (each message goes to one worker),
        but retained messages are never sent to shared subscriptions (MQTT 5, §4.8.2), so each worker also
        subscribes directly to the meta and gateway topics below the filter; those are idempotent upserts.
        """
        if not self.share_group:
            return [self.topic_filter]
        subs = [f"$share/{self.share_group}/{self.topic_filter}"]
        parts = self.topic_filter.split("/")
        if parts[-1] != "#":
            return subs
        base = parts[:-1]
        if len(base) <= _CELL_TOPIC_LEVELS - 1:
            meta = "/".join([*base, *["+"] * (_CELL_TOPIC_LEVELS - 1 - len(base)), "meta"])
            subs += [meta, f"{meta}/+"]  # …/meta/+: the further pages of a paged meta
        if len(base) <= _GATEWAY_TOPIC_LEVELS - 3:
            subs.append("/".join([*base, *["+"] * (_GATEWAY_TOPIC_LEVELS - 3 - len(base)), GATEWAY_LEVEL, "+", "+"]))
        return subs

    def plant_allowed(self, enterprise: str, site: str) -> bool:
        if self.allowed_plants is None:
            return True
        return enterprise in self.allowed_plants or f"{enterprise}/{site}" in self.allowed_plants
