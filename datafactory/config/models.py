"""Plant and edge config models — declared once; the JSON Schema and docs table are generated from them.

A plant config describes one enterprise site: who it is (for the bureau), its ISA-95 asset hierarchy, the
gateway's behaviour and the sources it reads (OPC-UA servers, MQTT devices), with every signal's meaning.
Secrets are never values here: only names of environment variables that hold them.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

from datafactory.codes.credit_code import validate_credit_code
from datafactory.config import signals
from datafactory.config.alerting import AlertingConfig
from datafactory.config.analytics import AnalyticsConfig
from datafactory.config.base import BrokerUrl, Name, StrictModel
from datafactory.config.modbus import ModbusSource
from datafactory.config.opcua import (  # noqa: F401  (re-exported: the models of every source kind are importable here)
    AnonymousAuth,
    Auth,
    CertificateAuth,
    OpcUaNode,
    OpcUaSecurity,
    OpcUaSource,
    SecurityMode,
    SecurityPolicy,
    TimestampSource,
    UsernameAuth,
)
from datafactory.config.opcua_folders import OpcUaFolder  # noqa: F401  (re-exported)
from datafactory.config.s7 import S7Source
from datafactory.config.signals import EnvVar, SignalBinding, SourceConfig
from datafactory.contract.meanings import Meaning

# The binding models moved to ``signals`` (source kinds in other modules need them); still importable from here.
Deadband = signals.Deadband
DeadbandKind = signals.DeadbandKind

_INDUSTRY_RE = re.compile(r"^[A-T](\d{2}(\d(\d)?)?)?$")


def _validate_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown IANA time zone {value!r}") from err
    return value


def _validate_industry_code(value: str) -> str:
    if not _INDUSTRY_RE.match(value):
        raise ValueError(
            f"industry code {value!r} is not a GB/T 4754-2017 code (section letter plus 2-4 digits, e.g. 'C3484')"
        )
    return value


class SizeClass(StrEnum):
    LARGE = "large"
    MEDIUM = "medium"
    SMALL = "small"
    MICRO = "micro"


class Ownership(StrEnum):
    STATE_OWNED = "state_owned"
    COLLECTIVE = "collective"
    PRIVATE = "private"
    HMT_INVESTED = "hmt_invested"  # Hong Kong, Macao, Taiwan
    FOREIGN_INVESTED = "foreign_invested"
    JOINT_STOCK = "joint_stock"
    LIMITED_LIABILITY = "limited_liability"
    OTHER = "other"


class EnterpriseConfig(StrictModel):
    id: Name = Field(description="Enterprise name used in topics and SQL (lower-case, e.g. 'acme').")
    name: str = Field(description="Registered legal name, e.g. '东莞市示例精密制造有限公司'.", min_length=1)
    credit_code: Annotated[str, AfterValidator(validate_credit_code)] = Field(
        description="Unified social credit code (GB 32100-2015, 18 characters, check character verified)."
    )
    industry_code: Annotated[str, AfterValidator(_validate_industry_code)] = Field(
        description="GB/T 4754-2017 industry code, section letter plus class digits, e.g. 'C3484'."
    )
    town: str = Field(description="Town, street or district (镇街) where the site is.", min_length=1)
    industrial_park: str = Field(default="", description="Industrial park, empty when not in a park.")
    size_class: SizeClass = Field(description="Size class by the national statistical rules for industry.")
    ownership: Ownership = Field(description="Registration / ownership type.")
    timezone: Annotated[str, AfterValidator(_validate_timezone)] = Field(
        default="Asia/Shanghai", description="IANA time zone of the plant; shifts and calendars use it."
    )


class SiteConfig(StrictModel):
    id: Name = Field(description="Site name used in topics (e.g. 'dongguan-1').")
    name: str = Field(default="", description="Human-readable site name.")


class CellConfig(StrictModel):
    id: Name = Field(description="Cell (machine or device) name within its line.")
    name: str = Field(default="", description="Human-readable machine name.")
    machine_class: str = Field(
        default="generic",
        description="Machine class for vibration severity zones (e.g. 'iso20816_group2_rigid').",
    )
    ideal_cycle_time_s: float | None = Field(
        default=None, gt=0, description="Ideal cycle time per unit in seconds (ISO 22400-2), for OEE performance."
    )
    target_rate_per_hour: float | None = Field(
        default=None, gt=0, description="Planned output per hour for production-vs-target views."
    )
    ideal_cycle_time_by_product: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="Ideal cycle time (s) per product code, used where the cell has a 'product' signal.",
    )


class LineConfig(StrictModel):
    id: Name = Field(description="Line name within its area.")
    name: str = Field(default="", description="Human-readable line name.")
    cells: list[CellConfig] = Field(default_factory=list, description="Machines/devices of this line.")


class AreaConfig(StrictModel):
    id: Name = Field(description="Area name within the site (e.g. 'stamping', 'utilities').")
    name: str = Field(default="", description="Human-readable area name.")
    lines: list[LineConfig] = Field(default_factory=list, description="Lines of this area.")


class TimestampFormat(StrEnum):
    EPOCH_MS = "epoch_ms"
    EPOCH_S = "epoch_s"
    EPOCH_US = "epoch_us"
    ISO8601 = "iso8601"
    RECEIVE_TIME = "receive_time"


class MqttJsonMapping(SignalBinding):
    topic: str = Field(description="Topic filter (wildcards + and # allowed) whose messages carry this signal.")
    value_path: str = Field(description="Dotted path to the value in the JSON payload, e.g. 'data.kw'.")
    timestamp_path: str = Field(default="", description="Dotted path to the timestamp; empty = receive time.")
    timestamp_format: TimestampFormat = Field(
        default=TimestampFormat.RECEIVE_TIME, description="How the timestamp is written."
    )
    quality_path: str = Field(default="", description="Dotted path to an OPC-UA status code; empty = Good.")


class MqttJsonSource(SourceConfig):
    bindings_key: ClassVar[str] = "mappings"

    kind: Literal["mqtt_json"] = Field(description="Subscribe to devices publishing JSON over MQTT.")
    id: Name = Field(description="Source name, unique in this config.")
    broker_url: BrokerUrl = Field(
        default="", description="Device broker, mqtt://host:port; empty = the platform broker (DATAFACTORY_MQTT_URL)."
    )
    username_env: EnvVar | None = Field(default=None, description="Environment variable with the broker user.")
    password_env: EnvVar | None = Field(default=None, description="Environment variable with the broker password.")
    mappings: list[MqttJsonMapping] = Field(default_factory=list, description="Payload mappings to signals.")


class SparkplugMetric(SignalBinding):
    edge_node: str = Field(description="Sparkplug edge node id that publishes the metric.", min_length=1)
    device: str = Field(default="", description="Device id under the edge node; empty for a node-level metric.")
    metric: str = Field(description="Metric name as announced in the NBIRTH/DBIRTH (may contain '/').", min_length=1)


class SparkplugLearn(StrictModel):
    """Signals learned from births: ``signal = slug(edge node/device/metric)`` (see docs/gateway.md)."""

    cell: str = Field(description="Cell path 'area/line/cell' that learned signals belong to.")
    meaning: Meaning = Field(default=Meaning.GENERIC, description="Meaning given to every learned signal.")
    edge_nodes: list[str] = Field(
        default_factory=list, description="Edge node ids to learn from; empty = every node of the group."
    )
    max_metrics: int = Field(
        default=1000, ge=1, le=100_000, description="Learned signals at most; further births are counted, not learned."
    )


class SparkplugSource(SourceConfig):
    bindings_key: ClassVar[str] = "metrics"

    kind: Literal["sparkplug"] = Field(description="Subscribe to Sparkplug B edge nodes (protobuf payloads).")
    id: Name = Field(description="Source name, unique in this config.")
    broker_url: BrokerUrl = Field(
        default="",
        description="Sparkplug broker, mqtt://host:port; empty = the platform broker (DATAFACTORY_MQTT_URL).",
    )
    username_env: EnvVar | None = Field(default=None, description="Environment variable with the broker user.")
    password_env: EnvVar | None = Field(default=None, description="Environment variable with the broker password.")
    group_id: str = Field(
        description="Sparkplug group id (second topic level); no '+', '#' or '/' (Sparkplug B §4.1).",
        min_length=1,
        pattern=r"^[^+#/]+$",
    )
    rebirth_on_gap: bool = Field(
        default=True, description="Send an NCMD 'Node Control/Rebirth' when a sequence number is missing."
    )
    rebirth_holdoff_s: float = Field(
        default=10.0,
        ge=0,
        description="After a rebirth request, send no other to the same edge node for this long (one outstanding).",
    )
    rebirth_max_per_minute: int | None = Field(
        default=4,
        ge=1,
        description="Hard ceiling of rebirth NCMDs per edge node in any 60 s; null = no ceiling (never in production).",
    )
    primary_host_id: str = Field(
        default="",
        description="Act as Sparkplug primary host with this host id (retained spBv1.0/STATE/<id>); empty = not.",
        pattern=r"^[^+#/]*$",
    )
    max_nodes: int = Field(
        default=1000, ge=1, le=100_000, description="Edge nodes tracked at most; messages of further ones are counted."
    )
    learn: SparkplugLearn | None = Field(
        default=None, description="Register every metric the edge nodes birth as a signal (declared bindings win)."
    )
    metrics: list[SparkplugMetric] = Field(default_factory=list, description="Metrics to read and what they mean.")


Source = Annotated[
    OpcUaSource | MqttJsonSource | SparkplugSource | ModbusSource | S7Source, Field(discriminator="kind")
]
"""The source registry: every source kind is one member here (its model) and one module ``gateway/sources/<kind>.py``.
The loader's union tags, ``PlantConfig.bindings()``, the semantic checks, the generated reference and the
conformance suite all derive from this union, so adding a kind needs no other edit."""

SOURCE_MODELS: tuple[type[SourceConfig], ...] = get_args(get_args(Source)[0])
SOURCE_KINDS: dict[str, type[SourceConfig]] = {m.kind_name(): m for m in SOURCE_MODELS}


class OverflowPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class GatewayConfig(StrictModel):
    id: Name = Field(description="Gateway name, unique within the site.")
    batch_max_samples: int = Field(default=500, ge=1, le=10_000, description="Publish a batch at this many samples.")
    batch_max_ms: int = Field(default=200, ge=1, description="…or when the oldest sample waited this long.")
    buffer_path: str = Field(
        default="", description="Store-and-forward SQLite file; empty = <state dir>/<gateway id>.buffer.sqlite."
    )
    buffer_max_mb: float = Field(default=512, gt=0, description="Bound of the on-disk buffer.")
    buffer_overflow: OverflowPolicy = Field(
        default=OverflowPolicy.DROP_OLDEST, description="What to drop when the buffer is full (always counted)."
    )
    status_interval_s: float = Field(default=10, gt=0, description="How often the status topic is refreshed.")


class PlantConfig(StrictModel):
    version: Literal[1] = Field(default=1, description="Config format version.")
    enterprise: EnterpriseConfig = Field(description="The enterprise operating this site.")
    site: SiteConfig = Field(description="The site (plant) this config describes.")
    gateway: GatewayConfig = Field(description="Edge gateway settings.")
    areas: list[AreaConfig] = Field(default_factory=list, description="ISA-95 asset hierarchy of the site.")
    sources: list[Source] = Field(default_factory=list, description="Where signals come from.")
    analytics: AnalyticsConfig = Field(
        default_factory=AnalyticsConfig, description="State taxonomy, shift calendar, tariff, baselines."
    )
    alerting: AlertingConfig = Field(
        default_factory=AlertingConfig, description="Alert rules, receivers, repeats, escalation, quiet hours."
    )

    def cell_paths(self) -> dict[str, CellConfig]:
        """Cells by their 'area/line/cell' path."""
        return {f"{a.id}/{ln.id}/{c.id}": c for a in self.areas for ln in a.lines for c in ln.cells}

    def config_version(self) -> str:
        """Content hash of the config: what a gateway reports it runs and what ``config diff`` compares."""
        import hashlib

        import orjson

        body = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()[:12]

    def bindings(self) -> list[SignalBinding]:
        return [b for src in self.sources for b in src.signal_bindings()]
