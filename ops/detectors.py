"""Attack and misuse early warning: detectors over the database and the broker log, writing ``security_alerts``.

Run by ``datafactory audit watch`` (once, or every N seconds). Each detector compares a window (default 10
minutes) with its usual level and raises an alert at most once per detector, subject and window bucket:

* dead_letter_flood — a plant's dead letters in the window versus its average per window over the previous day
  (malformed or hostile publishes, or a broken gateway);
* gateway_rate      — a plant's samples in the window versus its average per window over the previous hour, or
  the part of it the plant has data for (a gateway replaying or flooding; the baseline span bounds the cost);
* publish_denied    — publishes outside a gateway's prefix refused by the broker ACL (any is suspicious);
* auth_failures     — repeated refused CONNECTs from one address (password guessing);
* unknown_client    — a connection with a user name the generated broker config does not know (config drift or
  a hand-added account).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ops import mosquitto_log

log = logging.getLogger(__name__)


class WatchSettings(BaseSettings):
    """``DATAFACTORY_SECURITY_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DATAFACTORY_SECURITY_", extra="ignore")

    mosquitto_log: Path | None = Field(default=None, description="Mosquitto log file to watch (broker config).")
    mosquitto_passwd: Path | None = Field(default=None, description="Broker password file: its users are known.")
    window_minutes: float = Field(default=10, gt=0, description="Detection window.")
    dead_letter_min: int = Field(default=50, ge=1, description="Dead letters in a window before a flood is possible.")
    dead_letter_factor: float = Field(default=10, gt=1, description="…and this many times the usual per window.")
    rate_min_samples: int = Field(default=10_000, ge=1, description="Samples in a window before a rate alert.")
    rate_factor: float = Field(default=5, gt=1, description="Samples this many times the usual per window.")
    rate_baseline_minutes: float = Field(default=60, gt=0, description="History the usual sample rate is taken from.")
    auth_failures_min: int = Field(default=5, ge=1, description="Refused CONNECTs from one address per window.")


@dataclass(frozen=True)
class Alert:
    detector: str
    severity: str
    subject: str
    observed: float
    baseline: float | None
    plant_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        usual = "" if self.baseline is None else f" (usual {self.baseline:.1f})"
        return f"{self.severity.upper()} {self.detector} {self.subject}: {self.observed:g}{usual}"


def dead_letter_flood(conn: psycopg.Connection, now: datetime, s: WatchSettings) -> list[Alert]:
    """Dead letters in the window against the plant's usual rate over the day before.

    A dead-letter row stands for every delivery of one distinct message (``deliveries``, migration 0610), so a
    flood of one message repeated is counted by its deliveries: all of them when it first came in the window,
    one when it first came earlier and was seen again in the window (its earlier deliveries are the baseline's).
    """
    window = timedelta(minutes=s.window_minutes)
    windows_per_day = timedelta(days=1) / window
    rows = conn.execute(
        """
        SELECT d.plant_id, coalesce(p.enterprise || '/' || p.site, 'unknown plant'),
               coalesce(sum(CASE WHEN d.received_at >= %(start)s THEN d.deliveries ELSE 1 END)
                        FILTER (WHERE d.last_seen >= %(start)s), 0)::bigint AS now_count,
               coalesce(sum(d.deliveries) FILTER (WHERE d.received_at >= %(day)s AND d.received_at < %(start)s),
                        0)::bigint AS day_count,
               array_agg(DISTINCT d.reason) FILTER (WHERE d.last_seen >= %(start)s)
        FROM dead_letters d LEFT JOIN plants p ON p.id = d.plant_id
        WHERE d.last_seen >= %(day)s AND d.received_at < %(end)s
        GROUP BY 1, 2
        """,
        {"start": now - window, "day": now - window - timedelta(days=1), "end": now},
    ).fetchall()
    alerts = []
    for plant_id, subject, count, day_count, reasons in rows:
        usual = day_count / windows_per_day
        if count >= s.dead_letter_min and count > s.dead_letter_factor * max(usual, 1.0):
            severity = "critical" if count > 10 * s.dead_letter_factor * max(usual, 1.0) else "warning"
            alerts.append(
                Alert(
                    "dead_letter_flood", severity, subject, count, usual, plant_id, {"reasons": sorted(reasons or [])}
                )
            )
    return alerts


@dataclass(frozen=True)
class _RateBaseline:
    start: datetime  # the window start it was counted up to
    plants: dict[int, tuple[int, datetime]]  # plant id → (samples in the baseline span, first sample there)


# Per database: a watch loop recounts the baseline at most once per window and only the window on other runs.
_rate_baselines: dict[str, _RateBaseline] = {}

_PER_PLANT_SQL = """
    SELECT g.plant_id, p.enterprise || '/' || p.site, sum(x.n)::bigint, min(x.first)
    FROM (SELECT signal_id, count(*) AS n, min(time) AS first FROM samples
          WHERE time >= %(lo)s AND time < %(hi)s GROUP BY signal_id) x
    JOIN signals g ON g.id = x.signal_id JOIN plants p ON p.id = g.plant_id
    GROUP BY 1, 2
"""


def gateway_rate(conn: psycopg.Connection, now: datetime, s: WatchSettings) -> list[Alert]:
    """Per plant (samples carry no gateway; one plant's data comes from its gateway(s)): samples timed in the
    window versus the plant's usual per window, measured over the part of the baseline span it has data for
    (from its first sample there), and only once it has at least a window of history: a plant that just started
    has no usual rate yet, and one with a short history is not diluted over an hour it was silent. Counts are
    grouped per signal before the join; the baseline is reused for up to one window, so a watch loop running
    every few seconds counts only the window on most runs."""
    window = timedelta(minutes=s.window_minutes)
    baseline_span = max(timedelta(minutes=s.rate_baseline_minutes), 2 * window)
    start = now - window
    key = conn.info.dsn
    base = _rate_baselines.get(key)
    if base is None or not timedelta(0) <= start - base.start < window:
        rows = conn.execute(_PER_PLANT_SQL, {"lo": start - baseline_span, "hi": start}).fetchall()
        base = _RateBaseline(start, {plant_id: (int(n), first) for plant_id, _, n, first in rows})
        _rate_baselines[key] = base
    alerts = []
    for plant_id, subject, count, _ in conn.execute(_PER_PLANT_SQL, {"lo": start, "hi": now}).fetchall():
        if plant_id not in base.plants:
            continue
        before, first = base.plants[plant_id]
        history = base.start - first
        if history < window:
            continue
        usual = before * (window / history)
        if count >= s.rate_min_samples and usual > 0 and count > s.rate_factor * usual:
            severity = "critical" if count > 2 * s.rate_factor * usual else "warning"
            alerts.append(Alert("gateway_rate", severity, subject, int(count), usual, plant_id))
    return alerts


def broker_log(events: list[mosquitto_log.LogEvent], s: WatchSettings, known_users: set[str] | None) -> list[Alert]:
    alerts = []
    denied = Counter((e.user or e.client) for e in events if e.kind == "publish_denied")
    for who, n in denied.items():
        topics = sorted({e.topic or "" for e in events if e.kind == "publish_denied" and (e.user or e.client) == who})
        alerts.append(
            Alert("publish_denied", "critical" if n >= 100 else "warning", who, n, 0.0, details={"topics": topics[:20]})
        )
    failures = Counter(e.address or e.client for e in events if e.kind == "auth_failure")
    for address, n in failures.items():
        if n >= s.auth_failures_min:
            alerts.append(
                Alert("auth_failures", "critical" if n >= 10 * s.auth_failures_min else "warning", address, n, None)
            )
    if known_users is not None:
        unknown = Counter(
            f"{e.user or '(no user)'}@{e.address}"
            for e in events
            if e.kind == "connected" and (e.user or "") not in known_users
        )
        for subject, n in unknown.items():
            alerts.append(Alert("unknown_client", "critical", subject, n, None))
    return alerts


def _plant_of_user(conn: psycopg.Connection, user: str) -> int | None:
    """Gateway users are ``enterprise.site.gateway``: map them to the plant for the alert row."""
    parts = user.split(".")
    if len(parts) != 3:
        return None
    row = conn.execute("SELECT id FROM plants WHERE enterprise = %s AND site = %s", (parts[0], parts[1])).fetchone()
    return None if row is None else int(row[0])


def known_users(passwd: Path | None) -> set[str] | None:
    if passwd is None or not passwd.exists():
        return None
    return {line.split(":", 1)[0] for line in passwd.read_text(encoding="utf-8").splitlines() if ":" in line}


def run(conn: psycopg.Connection, s: WatchSettings | None = None, *, now: datetime | None = None) -> list[Alert]:
    """Run every detector over the window ending ``now``; store new alerts (committed) and return them."""
    s = s or WatchSettings()
    now = now or datetime.now(UTC)
    window = timedelta(minutes=s.window_minutes)
    alerts = dead_letter_flood(conn, now, s) + gateway_rate(conn, now, s)
    if s.mosquitto_log is not None and s.mosquitto_log.exists():
        events = mosquitto_log.read_events(s.mosquitto_log, now - window, now)
        for alert in broker_log(events, s, known_users(s.mosquitto_passwd)):
            plant = _plant_of_user(conn, alert.subject) if alert.plant_id is None else alert.plant_id
            alerts.append(
                Alert(
                    alert.detector, alert.severity, alert.subject, alert.observed, alert.baseline, plant, alert.details
                )
            )
    bucket = datetime.fromtimestamp(now.timestamp() // window.total_seconds() * window.total_seconds(), UTC)
    new = []
    for alert in alerts:
        row = conn.execute(
            """
            INSERT INTO security_alerts (detector, severity, plant_id, subject, window_start, window_end, observed,
                                         baseline, details)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (detector, subject, window_start) DO NOTHING RETURNING id
            """,
            (
                alert.detector,
                alert.severity,
                alert.plant_id,
                alert.subject,
                bucket,
                bucket + window,
                alert.observed,
                alert.baseline,
                Jsonb(alert.details),
            ),
        ).fetchone()
        if row is not None:
            new.append(alert)
            log.info("security alert: %s", alert)
    conn.commit()
    return new
