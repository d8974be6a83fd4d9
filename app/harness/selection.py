"""Which PostgreSQL and MQTT broker the demo uses: the configured ones, the local ones, or private embedded ones.

Order, for each service separately: ``DATAFACTORY_DATABASE_URL`` / ``DATAFACTORY_MQTT_URL`` when set; else the
local server on its standard port (127.0.0.1:5432, 127.0.0.1:1883) if it answers; else a private one under the
state directory (``LocalPostgres`` in ``<state>/pg``, ``start_default_broker``). ``embedded=True`` skips the
first two steps (a fresh machine, or a test that must not touch shared services).
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from app.harness.broker import EmbeddedBroker, MosquittoBroker, start_default_broker
from app.harness.postgres import LocalPostgres, running_postmaster
from app.harness.process import ManagedProcess, ServiceStartError, free_port, port_accepts, postgres_answers
from datafactory.db.connect import with_database

LOCAL_PG_PORT = 5432
LOCAL_MQTT_PORT = 1883
# A stable port for the embedded PostgreSQL so its URL stays the same from one demo run to the next.
EMBEDDED_PG_PORT = 54329
DEMO_DATABASE = "datafactory"


@dataclass
class Services:
    database_url: str
    mqtt_url: str
    database_origin: str  # "environment", "local", "embedded", "embedded, left running (pid N)"
    mqtt_origin: str
    owned: list[ManagedProcess] = field(default_factory=list)

    @property
    def mqtt_v5(self) -> bool:
        """False only for the embedded amqtt broker, which speaks MQTT 3.1.1 only."""
        return not any(isinstance(s, EmbeddedBroker) for s in self.owned)

    def describe_broker(self) -> str:
        for service in self.owned:
            if isinstance(service, MosquittoBroker):
                return "private Mosquitto"
            if isinstance(service, EmbeddedBroker):
                return "embedded amqtt (MQTT 3.1.1 only)"
        return "Mosquitto" if self.mqtt_origin == "local" else "configured broker"

    def stop(self) -> None:
        """Stop the services this run started, last started first."""
        for service in reversed(self.owned):
            with suppress(Exception):  # stopping is best effort; the others must still be stopped
                service.stop()
        self.owned.clear()


def resolve_services(state_dir: Path, *, embedded: bool = False) -> Services:
    """Decide (and start, when needed) the database and broker. Raises ``ServiceStartError``."""
    owned: list[ManagedProcess] = []
    try:
        db_url, db_origin = _database(state_dir, embedded, owned)
        mqtt_url, mqtt_origin = _broker(state_dir, embedded, owned)
    except BaseException:
        for service in reversed(owned):
            service.stop()
        raise
    return Services(db_url, mqtt_url, db_origin, mqtt_origin, owned)


def _database(state_dir: Path, embedded: bool, owned: list[ManagedProcess]) -> tuple[str, str]:
    env = os.environ.get("DATAFACTORY_DATABASE_URL")
    if env and not embedded:
        return env, "environment"
    if not embedded and port_accepts(LOCAL_PG_PORT):
        return f"postgresql://postgres@127.0.0.1:{LOCAL_PG_PORT}/{DEMO_DATABASE}", "local"
    leftover = running_postmaster(state_dir / "pg")
    if leftover is not None:
        # An earlier run left its server running on this cluster (--keep-services): a second server cannot start
        # on the same data, so use that one — and leave it running, as it was found.
        pid, port = leftover
        # Answering as PostgreSQL, not only accepting TCP: a hung server accepts and never replies, and the
        # migration would then wait out its connect timeout and blame the URL instead of naming the process.
        if not postgres_answers(port):
            raise ServiceStartError(
                f"a PostgreSQL (pid {pid}) left running by an earlier run holds {state_dir / 'pg'} but does not "
                f"answer on 127.0.0.1:{port}: stop it (kill {pid}) and run again"
            )
        return f"postgresql://postgres@127.0.0.1:{port}/{DEMO_DATABASE}", f"embedded, left running (pid {pid})"
    pg = LocalPostgres(state_dir / "pg", port=EMBEDDED_PG_PORT if not port_accepts(EMBEDDED_PG_PORT) else free_port())
    try:
        pg.start()
    except ServiceStartError:
        if pg.port != EMBEDDED_PG_PORT:
            raise
        # Another demo took the stable port between our check and the server's bind: any free port will do.
        pg = LocalPostgres(state_dir / "pg", port=free_port())
        pg.start()
    owned.append(pg)
    return with_database(pg.url, DEMO_DATABASE), "embedded"


def _broker(state_dir: Path, embedded: bool, owned: list[ManagedProcess]) -> tuple[str, str]:
    env = os.environ.get("DATAFACTORY_MQTT_URL")
    if env and not embedded:
        return env, "environment"
    if not embedded and port_accepts(LOCAL_MQTT_PORT):
        return f"mqtt://127.0.0.1:{LOCAL_MQTT_PORT}", "local"
    broker = start_default_broker(state_dir)
    owned.append(broker)
    return broker.url, "embedded"

