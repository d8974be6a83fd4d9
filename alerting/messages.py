"""Short notification texts in Chinese or English: plant, machine, what happened, since when, a dashboard link."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from datafactory.config.alerting import Language

SEVERITY = {
    Language.EN: {"info": "INFO", "warning": "WARNING", "critical": "CRITICAL"},
    Language.ZH: {"info": "提示", "warning": "警告", "critical": "严重"},
}
EVENT = {
    Language.EN: {"firing": "", "repeat": "still active: ", "escalation": "ESCALATED, not acknowledged: ",
                  "severity": "severity raised: ", "resolved": "RESOLVED: "},
    Language.ZH: {"firing": "", "repeat": "仍未恢复：", "escalation": "升级（无人确认）：",
                  "severity": "级别升高：", "resolved": "已恢复："},
}
WHAT = {
    "machine_down": ("Machine down", "设备停机"),
    "oee_below": ("{metric} below target", "{metric_zh}低于目标"),
    "pdm_alert": ("Maintenance alert", "预测性维护告警"),
    "peak_demand": ("Peak demand above contract", "最大需量超过合同值"),
    "specific_energy": ("Specific energy above baseline", "单耗高于基线"),
    "gateway_offline": ("Gateway or source offline", "网关或数据源离线"),
    "dataset_late": ("Dataset late", "数据集逾期"),
    "ingest": ("Ingest problem", "数据接入异常"),
}
METRIC_ZH = {"oee": "OEE", "availability": "可用率", "performance": "性能率", "quality": "质量率"}
# Dashboard per rule kind (uids of grafana/dashboards; a link, not an import).
DASHBOARD = {
    "machine_down": "df-machine-detail/machine-detail",
    "oee_below": "df-machine-detail/machine-detail",
    "pdm_alert": "df-maintenance/maintenance",
    "peak_demand": "df-energy/energy",
    "specific_energy": "df-energy/energy",
    "gateway_offline": "df-platform-health/platform-health",
    "dataset_late": "df-platform-health/platform-health",
    "ingest": "df-platform-health/platform-health",
}


def detail(kind: str, facts: dict[str, Any], value: float | None, lang: Language) -> str:
    zh = lang is Language.ZH
    if kind == "machine_down":
        reason = facts.get("reason") or ""
        return f"{'状态' if zh else 'state'} {facts.get('code')} {reason}".strip()
    if kind == "oee_below" and value is not None:
        return f"{value:.1%} < {facts['target']:.0%}" + (f" ({facts['shift']})" if facts.get("shift") else "")
    if kind == "pdm_alert":
        return str(facts.get("detail", ""))
    if kind == "peak_demand":
        return f"{facts['peak_kw']:.0f} kW > {facts['max_kw']:.0f} kW"
    if kind == "specific_energy":
        return f"+{facts['above_pct']:.1f} % ({facts['day'][:10]})"
    if kind == "gateway_offline":
        return f"{facts['gateway']} {facts.get('source') or ''} {facts['state']}".replace("  ", " ")
    if kind == "dataset_late":
        return f"{facts['dataset']} due {facts.get('due') or '?'}"
    return ", ".join(f"{k}={v}" for k, v in facts.items() if k not in ("window_s",))


def _duration(seconds: float, lang: Language) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} 分钟" if lang is Language.ZH else f"{minutes} min"
    return f"{minutes / 60:.1f} 小时" if lang is Language.ZH else f"{minutes / 60:.1f} h"


def render(*, lang: Language, event: str, kind: str, severity: str, plant_label: str, plant_name: str,
           subject: str, since: datetime, now: datetime, tz: str, value: float | None, facts: dict[str, Any],
           dashboard_url: str, plant_id: int) -> tuple[str, str]:
    """(title, body) of one notification."""
    zh = lang is Language.ZH
    en_what, zh_what = WHAT.get(kind, (kind, kind))
    what = (zh_what if zh else en_what).format(metric=str(facts.get("metric", "")).upper(),
                                               metric_zh=METRIC_ZH.get(str(facts.get("metric")), ""))
    sev = SEVERITY[lang][severity]
    title = f"[{sev}] {EVENT[lang].get(event, '')}{what}: {subject} ({plant_label})"
    if zh:
        title = f"【{sev}】{EVENT[lang].get(event, '')}{what}：{subject}（{plant_label}）"
    local = since.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    link = f"{dashboard_url.rstrip('/')}/d/{DASHBOARD.get(kind, DASHBOARD['ingest'])}?var-plant={plant_id}"
    labels = ("工厂", "对象", "情况", "开始", "持续", "看板") if zh else (
        "Plant", "Subject", "What", "Since", "For", "Dashboard")
    lines = [
        f"{labels[0]}: {plant_name} ({plant_label})",
        f"{labels[1]}: {subject}",
        f"{labels[2]}: {what} — {detail(kind, facts, value, lang)}",
        f"{labels[3]}: {local} ({tz})",
        f"{labels[4]}: {_duration((now - since).total_seconds(), lang)}",
        f"{labels[5]}: {link}",
    ]
    return title, "\n".join(lines)
