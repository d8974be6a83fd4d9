"""How figures look at a glance: colours, thresholds and value mappings shared by every dashboard.

One place so that "running" is the same green and 85 % OEE the same threshold everywhere. Machine state colours
follow the state codes of docs/simulator.md (shared semantics): production green, waiting yellow, planned stops
blue, setup purple, unplanned stops red.
"""

from __future__ import annotations

from grafana.model import Mapping_, Step

# World-class OEE is ~85 %; below 60 % is typical of a line with serious losses.
OEE_STEPS = (Step(None, "red"), Step(0.6, "orange"), Step(0.85, "green"))
AVAILABILITY_STEPS = (Step(None, "red"), Step(0.8, "orange"), Step(0.9, "green"))
PERFORMANCE_STEPS = (Step(None, "red"), Step(0.8, "orange"), Step(0.95, "green"))
QUALITY_STEPS = (Step(None, "red"), Step(0.97, "orange"), Step(0.99, "green"))
# ISO 20816-3 group 2 rigid foundation, velocity RMS mm/s: A/B 1.4, B/C 2.8, C/D 4.5.
VIBRATION_STEPS = (Step(None, "green"), Step(1.4, "#73BF69"), Step(2.8, "orange"), Step(4.5, "red"))
RUL_STEPS = (Step(None, "red"), Step(72, "orange"), Step(24 * 7, "green"))  # hours
AGE_STEPS = (Step(None, "green"), Step(300, "orange"), Step(3600, "red"))  # seconds since the newest sample
ZERO_IS_GOOD = (Step(None, "green"), Step(1, "red"))
LAG_STEPS = (Step(None, "green"), Step(10, "orange"), Step(60, "red"))  # seconds

STATE_MAPPINGS: tuple[Mapping_, ...] = (
    Mapping_("running", "green", value="100"),
    Mapping_("reduced speed", "#73BF69", value="110"),
    Mapping_("starved", "yellow", value="200"),
    Mapping_("blocked", "#F2CC0C", value="210"),
    Mapping_("break", "#8AB8FF", value="300"),
    Mapping_("no order", "#5794F2", value="310"),
    Mapping_("planned maintenance", "#3274D9", value="320"),
    Mapping_("no shift", "#C0D8FF", value="330"),
    Mapping_("setup", "purple", value="400"),
    Mapping_("jam", "#FF7383", value="500"),
    Mapping_("mechanical failure", "red", value="510"),
    Mapping_("electrical failure", "dark-red", value="520"),
    Mapping_("tooling", "#FF9830", value="530"),
    Mapping_("quality adjustment", "orange", value="540"),
)

ZONE_MAPPINGS: tuple[Mapping_, ...] = (
    Mapping_("A — new", "green", value="A"),
    Mapping_("B — unrestricted", "#73BF69", value="B"),
    Mapping_("C — restricted", "orange", value="C"),
    Mapping_("D — damage", "red", value="D"),
)

SEVERITY_MAPPINGS: tuple[Mapping_, ...] = (
    Mapping_("critical", "red", value="critical"),
    Mapping_("warning", "orange", value="warning"),
)

ONLINE_MAPPINGS: tuple[Mapping_, ...] = (
    Mapping_("online", "green", value="true"),
    Mapping_("OFFLINE", "red", value="false"),
)

# Guangdong time-of-use bands, as the tariff names them in analytics.
BAND_COLOURS = {"critical": "dark-red", "peak": "orange", "flat": "yellow", "valley": "green"}


def colour_override(field_name: str, colour: str) -> dict[str, object]:
    """Fix a series' colour by its field name (so 'reject' is red on every chart)."""
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
    }


def unit_override(field_name: str, unit: str) -> dict[str, object]:
    return {"matcher": {"id": "byName", "options": field_name}, "properties": [{"id": "unit", "value": unit}]}


def cell_colour_override(field_name: str) -> dict[str, object]:
    """Colour a table cell's background by the panel's thresholds."""
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}}],
    }


def thresholds_override(field_name: str, steps: tuple[Step, ...]) -> dict[str, object]:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [
            {"id": "thresholds",
             "value": {"mode": "absolute", "steps": [{"value": s.value, "color": s.color} for s in steps]}},
            {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
        ],
    }
