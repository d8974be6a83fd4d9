"""One evaluation round: conditions → alert lifecycle → notifications enqueued in the outbox, in one transaction.

Lifecycle per (plant, rule, subject): a new condition opens a *pending* episode; it *fires* once the condition
has held ``for_s``; a firing episode is notified, repeated every ``repeat_interval_s`` and escalated to the
policy's second receivers after ``escalate_after_s`` unless someone *acknowledged* it; it is *resolved* when the
condition is gone (a resolved message goes to whoever was told). Everything is read from and written to the
database, so a restart resumes the same episodes: nothing is re-sent and nothing pending is lost.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import psycopg

from alerting.conditions import EVALUATORS, Condition, group_key
from alerting.messages import render
from datafactory.config.alerting import SEVERITY_RANK, Language, Policy, Rule, Severity
from datafactory.config.analytics import clock_minutes
from datafactory.config.models import PlantConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plant:
    id: int
    config: PlantConfig

    @property
    def label(self) -> str:
        return f"{self.config.enterprise.id}/{self.config.site.id}"


@dataclass
class RoundStats:
    conditions: int = 0
    opened: int = 0
    fired: int = 0
    resolved: int = 0
    notifications: int = 0
    failed_rules: list[str] = field(default_factory=list)
    queries: int = 0


def quiet_until(policy: Policy, severity: str, now: datetime, tz: str) -> datetime | None:
    """End of the quiet hours if ``now`` is inside them and the severity does not break through, else None."""
    q = policy.quiet_hours
    if q is None or SEVERITY_RANK[Severity(severity)] >= SEVERITY_RANK[q.breaks_through]:
        return None
    local = now.astimezone(ZoneInfo(tz))
    m = local.hour * 60 + local.minute
    start, end = clock_minutes(q.start), clock_minutes(q.end)
    inside = start <= m < end if start <= end else (m >= start or m < end)
    if not inside:
        return None
    day = local.date() if m < end else local.date() + timedelta(days=1)
    end_local = datetime.combine(day, time(0), tzinfo=local.tzinfo) + timedelta(minutes=end)
    return end_local.astimezone(now.tzinfo)


def _conditions(conn: psycopg.Connection, plants: list[Plant], now: datetime, stats: RoundStats
                ) -> tuple[dict[tuple[int, str, str], tuple[Rule, Condition]], set[tuple[int, str]]]:
    groups: dict[tuple[str, str], list[tuple[Plant, Rule]]] = defaultdict(list)
    for plant in plants:
        for rule in plant.config.alerting.rules:
            if rule.enabled:
                groups[(rule.kind, group_key(rule, plant.config))].append((plant, rule))
    found: dict[tuple[int, str, str], tuple[Rule, Condition]] = {}
    evaluated: set[tuple[int, str]] = set()
    for (kind, _), members in groups.items():
        rule0 = members[0][1]
        by_plant = {p.id: r for p, r in members}
        try:
            with conn.transaction():  # a savepoint: one broken rule must not abort the round
                conds = EVALUATORS[kind](conn, rule0, {p.id: p.config for p, _ in members}, now)
        except psycopg.Error as err:
            log.error("rule kind %s failed for %d plant(s), its alerts are left as they are: %s",
                      kind, len(members), str(err).strip())
            stats.failed_rules.extend(f"{p.label}:{r.id}" for p, r in members)
            continue
        stats.queries += 1
        evaluated.update((p.id, r.id) for p, r in members)
        for c in conds:
            rule = by_plant[c.plant_id]
            found[(c.plant_id, rule.id, c.subject)] = (rule, c)
    stats.conditions = len(found)
    return found, evaluated


LIVE = """
SELECT id, plant_id, rule_id, subject, status, since, fired_at, last_notified_at, notify_count, escalated_at,
       severity, summary
FROM alert_instances WHERE status <> 'resolved' AND plant_id = ANY(%s) FOR UPDATE
"""


def _silenced(conn: psycopg.Connection, plant_id: int, rule_id: str, subject: str, now: datetime) -> bool:
    return conn.execute(
        "SELECT 1 FROM alert_silences WHERE plant_id = %s AND until > %s AND rule_id IN ('', %s)"
        " AND subject IN ('', %s) LIMIT 1", (plant_id, now, rule_id, subject)).fetchone() is not None


def enqueue(conn: psycopg.Connection, plant: Plant, instance_id: int | None, event: str, receivers: list[str], *,
            message: dict[str, Any], severity: str, now: datetime, attach: str | None = None) -> int:
    """Write one outbox row per receiver (each in its language); the sender picks them up."""
    cfg = plant.config.alerting
    hold = quiet_until(cfg.policy, severity, now, plant.config.enterprise.timezone) if event != "report" else None
    n = 0
    for rid in dict.fromkeys(receivers):
        rec = cfg.receiver(rid)
        if "title" in message:
            title, body = message["title"][rec.language.value], message["body"][rec.language.value]
        else:
            title, body = render(lang=rec.language, event=event, **message)
        conn.execute(
            "INSERT INTO alert_outbox (plant_id, instance_id, event, receiver, url_env, kind, language, title, body,"
            " attach, not_before) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (plant.id, instance_id, event, rid, rec.url_env, rec.kind.value, rec.language.value, title, body,
             attach, hold or now))
        n += 1
    return n


def _receivers(plant: Plant, rule: Rule) -> list[str]:
    return list(rule.receivers or plant.config.alerting.policy.receivers)


def evaluate(conn: psycopg.Connection, plants: list[Plant], now: datetime) -> RoundStats:
    """One round; the caller commits (the state changes and their outbox rows become durable together)."""
    stats = RoundStats()
    found, evaluated = _conditions(conn, plants, now, stats)
    by_id = {p.id: p for p in plants}
    rules = {(p.id, r.id): r for p in plants for r in p.config.alerting.rules}
    live = {(r[1], r[2], r[3]): r for r in conn.execute(LIVE, ([p.id for p in plants],)).fetchall()}
    for key, (rule, cond) in found.items():
        plant = by_id[key[0]]
        severity = cond.severity if cond.severity and SEVERITY_RANK[Severity(cond.severity)] > SEVERITY_RANK[
            rule.severity] else rule.severity.value
        summary = orjson.dumps(cond.facts, default=str).decode()
        row = live.get(key)
        if row is None:
            iid, status, since = conn.execute(
                "INSERT INTO alert_instances (plant_id, rule_id, rule_kind, subject, cell_id, severity, status, since,"
                " last_seen_at, value, summary) VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s, %s::jsonb)"
                " RETURNING id, status, since",
                (plant.id, rule.id, rule.kind, cond.subject, cond.cell_id, severity, cond.since, now,
                 cond.value, summary)).fetchone() or (0, "", now)
            row = (iid, plant.id, rule.id, cond.subject, status, since, None, None, 0, None, severity, {})
            stats.opened += 1
        iid, _, _, subject, status, since, fired_at, last_notified, notify_count, escalated_at, old_sev, _ = row
        conn.execute("UPDATE alert_instances SET last_seen_at = %s, value = %s, summary = %s::jsonb, severity = %s"
                     " WHERE id = %s", (now, cond.value, summary, severity, iid))
        if status == "pending" and (now - since).total_seconds() >= rule.for_s:
            status, fired_at = "firing", now
            conn.execute("UPDATE alert_instances SET status = 'firing', fired_at = %s WHERE id = %s", (now, iid))
            stats.fired += 1
        if status != "firing" or _silenced(conn, plant.id, rule.id, subject, now):
            continue
        policy = plant.config.alerting.policy
        message = {"kind": rule.kind, "severity": severity, "plant_label": plant.label,
                   "plant_name": plant.config.enterprise.name, "subject": subject, "since": since, "now": now,
                   "tz": plant.config.enterprise.timezone, "value": cond.value, "facts": cond.facts,
                   "dashboard_url": policy.dashboard_url, "plant_id": plant.id}
        event = None
        if notify_count == 0:
            event = "firing"
        elif SEVERITY_RANK[Severity(severity)] > SEVERITY_RANK[Severity(old_sev)]:
            event = "severity"
        elif last_notified is not None and (now - last_notified).total_seconds() >= policy.repeat_interval_s:
            event = "repeat"
        if event is not None:
            stats.notifications += enqueue(conn, plant, iid, event, _receivers(plant, rule), message=message,
                                           severity=severity, now=now)
            conn.execute("UPDATE alert_instances SET last_notified_at = %s, notify_count = notify_count + 1"
                         " WHERE id = %s", (now, iid))
        if (policy.escalate_to and escalated_at is None and fired_at is not None
                and (now - fired_at).total_seconds() >= policy.escalate_after_s):
            stats.notifications += enqueue(conn, plant, iid, "escalation", list(policy.escalate_to), message=message,
                                           severity=severity, now=now)
            conn.execute("UPDATE alert_instances SET escalated_at = %s WHERE id = %s", (now, iid))
    for key, row in live.items():
        if key in found or (key[0], key[1]) not in evaluated:
            continue  # still active, or its rule could not be evaluated this round (unknown ≠ resolved)
        iid, plant_id, rule_id, subject, _status, since, _f, _l, notify_count, escalated_at, sev, summary = row
        conn.execute("UPDATE alert_instances SET status = 'resolved', resolved_at = %s WHERE id = %s", (now, iid))
        stats.resolved += 1
        gone_rule = rules.get((plant_id, rule_id))
        if notify_count and gone_rule is not None:
            plant = by_id[plant_id]
            policy = plant.config.alerting.policy
            told = _receivers(plant, gone_rule) + (list(policy.escalate_to) if escalated_at else [])
            message = {"kind": gone_rule.kind, "severity": sev, "plant_label": plant.label,
                       "plant_name": plant.config.enterprise.name, "subject": subject, "since": since, "now": now,
                       "tz": plant.config.enterprise.timezone, "value": None, "facts": summary or {},
                       "dashboard_url": policy.dashboard_url, "plant_id": plant.id}
            stats.notifications += enqueue(conn, plant, iid, "resolved", told, message=message, severity=sev, now=now)
    return stats


def acknowledge(conn: psycopg.Connection, instance_id: int, by: str, now: datetime) -> bool:
    row = conn.execute(
        "UPDATE alert_instances SET status = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s"
        " WHERE id = %s AND status IN ('pending', 'firing') RETURNING id", (now, by, instance_id)).fetchone()
    return row is not None


def silence(conn: psycopg.Connection, plant_id: int, rule_id: str, subject: str, *, until: datetime, by: str,
            reason: str) -> int:
    row = conn.execute(
        "INSERT INTO alert_silences (plant_id, rule_id, subject, until, created_by, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id", (plant_id, rule_id, subject, until, by, reason)).fetchone()
    assert row is not None
    return int(row[0])


__all__ = ["Language", "Plant", "RoundStats", "acknowledge", "enqueue", "evaluate", "silence"]
