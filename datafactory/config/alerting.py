"""Alerting section of the plant config: alert rules as code, receivers and the notification policy.

Read by the alerting service (``datafactory alerts run``) and by the Grafana alert-rule generator, so the
thresholds have one source of truth. Every rule reads result tables other services write (samples, oee,
energy_plant, energy_baseline_daily, alerts, gateway_status, dataset_alerts, ingest_health, dead_letters).
Secrets never appear here: a receiver names the environment variable that holds its notification URL (the
URL carries the bot token or the mail password).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from datafactory.config.analytics import ClockTime
from datafactory.config.base import Name, StrictModel

ENV_VAR = r"^[A-Z_][A-Z0-9_]*$"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class ReceiverKind(StrEnum):
    EMAIL = "email"
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    FEISHU = "feishu"
    WEBHOOK = "webhook"


# Notification-URL schemes (apprise) each receiver kind accepts; checked when the URL is read.
RECEIVER_SCHEMES: dict[ReceiverKind, tuple[str, ...]] = {
    ReceiverKind.EMAIL: ("mailto", "mailtos"),
    ReceiverKind.WECOM: ("wecombot",),
    ReceiverKind.DINGTALK: ("dingtalk",),
    ReceiverKind.FEISHU: ("feishu",),
    ReceiverKind.WEBHOOK: ("json", "jsons"),
}


class Language(StrEnum):
    ZH = "zh"
    EN = "en"


class Receiver(StrictModel):
    id: Name = Field(description="Receiver name used by rules and shifts, e.g. 'maintenance-wecom'.")
    kind: ReceiverKind = Field(description="email | wecom | dingtalk | feishu | webhook.")
    url_env: str = Field(
        pattern=ENV_VAR,
        description="Environment variable holding the notification URL (apprise syntax: mailto://, wecombot://, "
        "dingtalk://, feishu://, json://); the URL carries the secret, so it is never in the config.",
    )
    language: Language = Field(default=Language.ZH, description="Language of the messages: zh or en.")


class QuietHours(StrictModel):
    start: ClockTime = Field(default="22:00", description="Plant-local start of the quiet hours.")
    end: ClockTime = Field(default="07:00", description="Plant-local end (may be after midnight).")
    breaks_through: Severity = Field(
        default=Severity.CRITICAL, description="Alerts of at least this severity are sent during quiet hours too."
    )


class RuleBase(StrictModel):
    id: Name = Field(description="Rule name, unique within the plant; part of every alert's identity.")
    severity: Severity = Field(default=Severity.WARNING, description="info | warning | critical.")
    for_s: float = Field(
        default=0, ge=0, description="The condition must hold this long (pending) before the alert fires."
    )
    enabled: bool = Field(default=True, description="A disabled rule is not evaluated.")
    receivers: list[Name] = Field(
        default_factory=list, description="Receivers of this rule; empty = the policy's default receivers."
    )


class MachineDownRule(RuleBase):
    kind: Literal["machine_down"] = Field(default="machine_down", description="Rule type.")
    categories: list[str] = Field(
        default_factory=lambda: ["unplanned_stop"],
        description="State categories (analytics.state_codes) that count as down.",
    )
    cells: list[str] = Field(
        default_factory=list, description="Only these 'area/line/cell' paths; empty = every machine."
    )


class OeeMetric(StrEnum):
    OEE = "oee"
    AVAILABILITY = "availability"
    PERFORMANCE = "performance"
    QUALITY = "quality"


class OeeBelowRule(RuleBase):
    kind: Literal["oee_below"] = Field(default="oee_below", description="Rule type.")
    metric: OeeMetric = Field(default=OeeMetric.OEE, description="oee | availability | performance | quality.")
    target: float = Field(default=0.65, gt=0, le=1, description="Alert when the metric is below this fraction.")
    window: Literal["shift", "rolling"] = Field(
        default="rolling", description="'shift': the last computed shift; 'rolling': the last window_h hours."
    )
    window_h: float = Field(default=4, gt=0, description="Length of the rolling window, hours.")
    min_planned_h: float = Field(
        default=0.5, ge=0, description="Ignore machines with less planned busy time than this in the window."
    )


class PdmRule(RuleBase):
    kind: Literal["pdm_alert"] = Field(default="pdm_alert", description="Rule type.")
    min_severity: Literal["warning", "critical"] = Field(
        default="warning", description="Predictive-maintenance alerts of at least this severity (critical = escalated)."
    )


class PeakDemandRule(RuleBase):
    kind: Literal["peak_demand"] = Field(default="peak_demand", description="Rule type.")
    max_kw: float = Field(default=500, gt=0, description="Contracted maximum 15-minute demand of the plant, kW.")
    window_h: float = Field(default=24, gt=0, description="Hours of hourly energy rows looked at.")


class SpecificEnergyRule(RuleBase):
    kind: Literal["specific_energy"] = Field(default="specific_energy", description="Rule type.")
    above_pct: float = Field(
        default=10, gt=0, description="Alert when a day's energy is this many % above the baseline's expectation."
    )
    days: int = Field(default=2, ge=1, description="Reporting days looked at (the newest first).")


class GatewayRule(RuleBase):
    kind: Literal["gateway_offline"] = Field(default="gateway_offline", description="Rule type.")
    stale_s: float = Field(
        default=120, gt=0, description="A gateway whose status is older than this counts as offline."
    )
    source_states: list[str] = Field(
        default_factory=lambda: ["disconnected"], description="Source states that count as failed."
    )


class DatasetLateRule(RuleBase):
    kind: Literal["dataset_late"] = Field(default="dataset_late", description="Rule type.")
    datasets: list[str] = Field(default_factory=list, description="Only these catalogue datasets; empty = all.")


class IngestRule(RuleBase):
    kind: Literal["ingest"] = Field(default="ingest", description="Rule type (platform-wide, not per plant).")
    max_lag_s: float = Field(default=60, gt=0, description="Alert when a worker's ingest lag exceeds this.")
    max_dead_letters: int = Field(
        default=100, ge=0, description="Alert when more dead letters than this arrived in window_s."
    )
    max_conflicts: int = Field(
        default=0, ge=0, description="Alert when a worker counted more conflicts (if ingest reports them)."
    )
    window_s: float = Field(default=900, gt=0, description="Window for the dead-letter count, seconds.")


Rule = Annotated[
    MachineDownRule | OeeBelowRule | PdmRule | PeakDemandRule | SpecificEnergyRule | GatewayRule
    | DatasetLateRule | IngestRule,
    Field(discriminator="kind"),
]


# Discriminator tags of the rule union (the loader leaves them out of error key paths; a user never writes them).
ALERT_RULE_KINDS = frozenset(
    m.model_fields["kind"].default
    for m in (MachineDownRule, OeeBelowRule, PdmRule, PeakDemandRule, SpecificEnergyRule, GatewayRule,
              DatasetLateRule, IngestRule)
)


def _default_rules() -> list[Rule]:
    return [
        MachineDownRule(id="machine-down", severity=Severity.CRITICAL, for_s=600),
        OeeBelowRule(id="oee-low-shift", window="shift", target=0.6),
        OeeBelowRule(id="availability-low", metric=OeeMetric.AVAILABILITY, target=0.7, window_h=4),
        PdmRule(id="pdm-alert"),
        PeakDemandRule(id="peak-demand", severity=Severity.CRITICAL),
        SpecificEnergyRule(id="specific-energy"),
        GatewayRule(id="gateway-offline", severity=Severity.CRITICAL, for_s=60),
        DatasetLateRule(id="dataset-late", severity=Severity.INFO),
        IngestRule(id="ingest-health", for_s=120),
    ]


class Policy(StrictModel):
    receivers: list[Name] = Field(default_factory=list, description="Default receivers of every rule.")
    repeat_interval_s: float = Field(
        default=4 * 3600, gt=0, description="A firing, unacknowledged alert is sent again this often."
    )
    escalate_to: list[Name] = Field(
        default_factory=list, description="Second receivers told when an alert stays unacknowledged."
    )
    escalate_after_s: float = Field(default=1800, gt=0, description="…for this long after it fired.")
    quiet_hours: QuietHours | None = Field(
        default=None, description="Hold less severe notifications during these hours (sent when they end)."
    )
    dashboard_url: str = Field(
        default="http://127.0.0.1:3000", description="Grafana base URL used in the messages' links."
    )


class ShiftReceivers(StrictModel):
    shift: Name = Field(description="Shift name of analytics.calendar.shifts, e.g. 'day'.")
    receivers: list[Name] = Field(default_factory=list, description="Who gets this shift's hand-over report.")


class AlertingConfig(StrictModel):
    rules: list[Rule] = Field(default_factory=_default_rules, description="Alert rules of the plant.")
    receivers: list[Receiver] = Field(default_factory=list, description="Where notifications go.")
    policy: Policy = Field(default_factory=Policy, description="Routing, repeats, escalation, quiet hours.")
    shift_reports: list[ShiftReceivers] = Field(
        default_factory=list, description="Receivers of the shift hand-over report, per shift."
    )

    @model_validator(mode="after")
    def _references(self) -> AlertingConfig:
        known = {r.id for r in self.receivers}
        ids = [r.id for r in self.rules]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"rule id(s) {', '.join(dup)} are used more than once")
        named = list(self.policy.receivers) + list(self.policy.escalate_to)
        named += [n for r in self.rules for n in r.receivers]
        named += [n for s in self.shift_reports for n in s.receivers]
        unknown = sorted({n for n in named if n not in known})
        if unknown:
            raise ValueError(
                f"receiver(s) {', '.join(unknown)} are not defined in alerting.receivers "
                f"(known: {', '.join(sorted(known)) or 'none'})"
            )
        return self

    def receiver(self, rid: str) -> Receiver:
        return next(r for r in self.receivers if r.id == rid)
