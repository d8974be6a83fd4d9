"""Unified-namespace topic grammar, version 1.

    df/v1/<enterprise>/<site>/<area>/<line>/<cell>/data      batched samples of one cell (QoS 1)
    df/v1/<enterprise>/<site>/<area>/<line>/<cell>/meta      signal definitions of one cell (QoS 1, retained)
    df/v1/<enterprise>/<site>/<area>/<line>/<cell>/meta/<k>  page k (2…64) of a meta too large for one message
    df/v1/<enterprise>/<site>/_gw/<gateway>/status           gateway health (retained, also the last will)
    df/v1/<enterprise>/<site>/_gw/<gateway>/config           deployed gateway config (retained)

The levels follow the ISA-95 equipment hierarchy. Every level is a name (see ``contract.names``); ``_gw``
cannot collide with an area because names never start with ``_``. A gateway owns ``df/v1/<enterprise>/<site>/#``,
which is what broker ACLs grant it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from datafactory.contract.names import is_valid_name, validate_name
from datafactory.errors import ContractError

ROOT = "df"
CONTRACT_VERSION = "v1"
PREFIX = f"{ROOT}/{CONTRACT_VERSION}"
GATEWAY_LEVEL = "_gw"


class TopicKind(StrEnum):
    DATA = "data"
    META = "meta"
    STATUS = "status"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class CellPath:
    """Where a cell (a machine or device) sits in the ISA-95 hierarchy."""

    enterprise: str
    site: str
    area: str
    line: str
    cell: str

    def __post_init__(self) -> None:
        for level in ("enterprise", "site", "area", "line", "cell"):
            validate_name(getattr(self, level), level)

    @property
    def key(self) -> str:
        """The cell's path as one string, ``enterprise/site/area/line/cell``; signal paths extend it."""
        return f"{self.enterprise}/{self.site}/{self.area}/{self.line}/{self.cell}"

    @property
    def plant(self) -> str:
        """The tenant a cell belongs to: ``enterprise/site``."""
        return f"{self.enterprise}/{self.site}"

    def topic(self, kind: TopicKind = TopicKind.DATA) -> str:
        if kind not in (TopicKind.DATA, TopicKind.META):
            raise ValueError(f"a cell topic is data or meta, not {kind}")
        return f"{PREFIX}/{self.key}/{kind}"

    def meta_page_topic(self, page: int) -> str:
        """Where page ``page`` (1-based) of a cell's meta is retained: page 1 on ``…/meta`` (a meta that fits one
        message is just that), page k > 1 on ``…/meta/k``. Each topic keeps its own retained page."""
        if not 1 <= page <= MAX_META_PAGES:
            raise ValueError(f"a meta page is between 1 and {MAX_META_PAGES}, not {page}")
        meta = self.topic(TopicKind.META)
        return meta if page == 1 else f"{meta}/{page}"

    def signal_path(self, signal: str) -> str:
        return f"{self.key}/{signal}"


def gateway_topic(enterprise: str, site: str, gateway: str, kind: TopicKind) -> str:
    if kind not in (TopicKind.STATUS, TopicKind.CONFIG):
        raise ValueError(f"a gateway topic is status or config, not {kind}")
    for what, value in (("enterprise", enterprise), ("site", site), ("gateway", gateway)):
        validate_name(value, what)
    return f"{PREFIX}/{enterprise}/{site}/{GATEWAY_LEVEL}/{gateway}/{kind}"


def plant_filter(enterprise: str | None = None, site: str | None = None) -> str:
    """MQTT topic filter for everything of one plant (or everything, with no arguments)."""
    if enterprise is None:
        return f"{PREFIX}/#"
    if site is None:
        return f"{PREFIX}/{enterprise}/#"
    return f"{PREFIX}/{enterprise}/{site}/#"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: TopicKind
    cell: CellPath | None  # set for data/meta
    enterprise: str
    site: str
    gateway: str | None  # set for status/config


# A cell's meta larger than one message is paged (``CellPath.meta_page_topic``, ``payload.encode_meta_pages``).
MAX_META_PAGES = 64


def _meta_page(level: str) -> bool:
    return level.isascii() and level.isdigit() and level[0] != "0" and 2 <= int(level) <= MAX_META_PAGES


_CELL_KINDS = {TopicKind.DATA.value: TopicKind.DATA, TopicKind.META.value: TopicKind.META}
_GW_KINDS = {TopicKind.STATUS.value: TopicKind.STATUS, TopicKind.CONFIG.value: TopicKind.CONFIG}


def parse_topic(topic: str) -> ParsedTopic:
    """Parse a v1 topic or raise ``ContractError('bad_topic', …)`` naming the first offending level."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != ROOT:
        raise ContractError("bad_topic", f"topic {topic!r} does not start with '{PREFIX}/'")
    if parts[1] != CONTRACT_VERSION:
        raise ContractError("bad_topic", f"topic {topic!r} has contract version {parts[1]!r}; supported: v1")
    if len(parts) == 7 and parts[4] == GATEWAY_LEVEL:
        _, _, enterprise, site, _, gateway, kind = parts
        if kind not in _GW_KINDS:
            raise ContractError("bad_topic", f"topic {topic!r}: gateway topic kind {kind!r} is not status/config")
        _check_levels(topic, (("enterprise", enterprise), ("site", site), ("gateway", gateway)))
        return ParsedTopic(_GW_KINDS[kind], None, enterprise, site, gateway)
    if len(parts) == 9 and parts[7] == TopicKind.META.value and _meta_page(parts[8]):
        parts = parts[:8]  # page k of a paged meta: a meta message like any other
    if len(parts) != 8:
        raise ContractError(
            "bad_topic",
            f"topic {topic!r} has {len(parts)} levels; expected {PREFIX}/enterprise/site/area/line/cell/data|meta",
        )
    _, _, enterprise, site, area, line, cell, kind = parts
    if kind not in _CELL_KINDS:
        raise ContractError("bad_topic", f"topic {topic!r}: last level {kind!r} is not data/meta")
    _check_levels(topic, (("enterprise", enterprise), ("site", site), ("area", area), ("line", line), ("cell", cell)))
    return ParsedTopic(_CELL_KINDS[kind], CellPath(enterprise, site, area, line, cell), enterprise, site, None)


def _check_levels(topic: str, levels: tuple[tuple[str, str], ...]) -> None:
    for what, value in levels:
        if not is_valid_name(value):
            raise ContractError("bad_topic", f"topic {topic!r}: {what} {value!r} is not a valid name")
