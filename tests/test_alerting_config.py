"""Alert rules as code: validated like the rest of the plant config; quiet hours computed in plant time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerting.delivery import DeliveryError, receiver_url
from alerting.engine import quiet_until
from datafactory.config.alerting import AlertingConfig, Policy, QuietHours
from datafactory.config.loader import validate_document
from datafactory.errors import ConfigError
from simulator.layout import demo_layout
from simulator.plant_config import plant_document


def _doc(alerting: dict) -> dict:
    doc = plant_document(demo_layout())
    doc["alerting"] = alerting
    return doc


def test_demo_plant_gets_default_rules_for_every_kind() -> None:
    cfg = validate_document(plant_document(demo_layout()))
    kinds = {r.kind for r in cfg.alerting.rules}
    assert kinds == {"machine_down", "oee_below", "pdm_alert", "peak_demand", "specific_energy",
                     "gateway_offline", "dataset_late", "ingest"}


def test_unknown_keys_and_receivers_are_errors_with_their_path() -> None:
    with pytest.raises(ConfigError) as err:
        validate_document(_doc({"rules": [{"id": "x", "kind": "machine_down", "for_minutes": 5}]}))
    assert "alerting.rules[0].for_minutes" in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate_document(_doc({"policy": {"receivers": ["nobody"]}}))
    assert "nobody" in str(err.value) and "not defined" in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate_document(_doc({"receivers": [{"id": "m", "kind": "email", "url_env": "mailto://x"}]}))
    assert "url_env" in str(err.value)  # a URL (with its secret) is refused: only a variable name is allowed


def test_receiver_url_comes_from_the_environment_and_must_fit_the_kind() -> None:
    with pytest.raises(DeliveryError, match="DF_X is not set"):
        receiver_url("DF_X", "wecom", {})
    with pytest.raises(DeliveryError, match="wecombot://"):
        receiver_url("DF_X", "wecom", {"DF_X": "json://127.0.0.1:9/"})
    assert receiver_url("DF_X", "dingtalk", {"DF_X": "dingtalk://token/"}) == "dingtalk://token/"


def test_quiet_hours_hold_warnings_until_morning_but_not_critical_alerts() -> None:
    policy = Policy(quiet_hours=QuietHours(start="22:00", end="07:00"))
    night = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    assert quiet_until(policy, "warning", night, "Asia/Shanghai") == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert quiet_until(policy, "critical", night, "Asia/Shanghai") is None
    assert quiet_until(policy, "warning", datetime(2026, 3, 2, 4, 0, tzinfo=UTC), "Asia/Shanghai") is None
    assert quiet_until(AlertingConfig().policy, "info", night, "Asia/Shanghai") is None


def test_shift_windows_follow_the_calendar_in_plant_time() -> None:
    from datetime import date

    from alerting.report.data import ReportError, last_completed, shift_window

    cfg = validate_document(plant_document(demo_layout()))  # day 08:00–20:00, night 20:00–08:00, Sundays off
    night = shift_window(cfg, "night", date(2026, 3, 7))  # Saturday night: belongs to Saturday, ends Sunday 08:00
    assert (night.start, night.end) == (datetime(2026, 3, 7, 12, 0, tzinfo=UTC), datetime(2026, 3, 8, 0, 0, tzinfo=UTC))
    monday_morning = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
    assert last_completed(cfg, "day", monday_morning).day == date(2026, 3, 7)  # Sunday's day shift does not exist
    assert last_completed(cfg, "night", monday_morning).day == date(2026, 3, 7)
    with pytest.raises(ReportError, match="no shift 'evening'"):
        shift_window(cfg, "evening", date(2026, 3, 7))
