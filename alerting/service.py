"""The ``alerts run`` loop: load the plants' configs, evaluate a round, commit, send what is due."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from alerting.delivery import DeliveryStats, deliver_due
from alerting.engine import Plant, RoundStats, evaluate
from datafactory.config.loader import load_config, validate_document
from datafactory.db.connect import connect
from datafactory.errors import DataFactoryError

log = logging.getLogger(__name__)


def plants_from(conn: object, configs: list[Path]) -> list[Plant]:
    """Plants of the given config files, or else the newest config each gateway deployed (plant_configs)."""
    import psycopg

    assert isinstance(conn, psycopg.Connection)
    out = []
    if configs:
        for path in configs:
            cfg = load_config(path)
            row = conn.execute("SELECT id FROM plants WHERE enterprise = %s AND site = %s",
                               (cfg.enterprise.id, cfg.site.id)).fetchone()
            if row is None:
                raise DataFactoryError(f"{path}: plant {cfg.enterprise.id}/{cfg.site.id} is not registered yet; "
                                       "deploy its config or run ingest first")
            out.append(Plant(int(row[0]), cfg))
        return out
    rows = conn.execute("SELECT DISTINCT ON (plant_id) plant_id, config FROM plant_configs"
                        " ORDER BY plant_id, received_at DESC").fetchall()
    for plant_id, doc in rows:
        out.append(Plant(int(plant_id), validate_document(doc, f"plant_configs[{plant_id}]")))
    return out


class AlertService:
    def __init__(self, database_url: str, configs: list[Path], *, env: Mapping[str, str] | None = None,
                 retry_base_s: float = 30.0) -> None:
        self.url, self.configs, self.env, self.retry_base_s = database_url, configs, env, retry_base_s
        self.stop_event = threading.Event()

    def round(self, now: datetime | None = None) -> tuple[RoundStats, DeliveryStats]:
        now = now or datetime.now(UTC)
        with connect(self.url, application_name="datafactory-alerts") as conn:
            plants = plants_from(conn, self.configs)
            stats = evaluate(conn, plants, now)
            conn.commit()  # lifecycle changes and their outbox rows together
            sent = deliver_due(conn, datetime.now(UTC), env=self.env, retry_base_s=self.retry_base_s)
        return stats, sent

    def run(self, every: float) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                stats, sent = self.round()
                log.info("alerts round: %s; delivery %s", stats, sent)
            except DataFactoryError as err:
                log.error("alerts round failed, retrying in %.0f s: %s", every, err)
            except Exception:
                # The service's top level: one bad round must not stop the next.
                log.exception("alerts round failed unexpectedly, retrying in %.0f s", every)
            self.stop_event.wait(max(0.0, every - (time.monotonic() - started)))
