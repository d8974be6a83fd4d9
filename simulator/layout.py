"""The simulated plant's asset layout: which machines exist, their signals and physical parameters.

The demo plant of ``docs/simulator.md`` (enterprise ``demo-precision``) is ``demo_layout()``; larger plants for
benchmarks come from the same function with more lines and machines. ``plant_config`` turns a layout into the
``PlantConfig`` an edge gateway needs to read the simulator, so the YAML in ``edge_configs/`` and code-built
configs (tests, backfill of scaled plants) describe the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from datafactory.contract.meanings import Meaning

ENTERPRISE = "demo-precision"
SITE = "dongguan-1"
TIMEZONE = "Asia/Shanghai"
NAMESPACE_URI = "urn:datafactory:simulator"
METER_CELL = "utilities/main/main-meter"


@dataclass(frozen=True, slots=True)
class SignalSpec:
    name: str
    meaning: Meaning
    unit: str
    description: str


# Order matters: a signal's index in this tuple is its index inside a machine's sample stream.
MACHINE_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("state", Meaning.MACHINE_STATE, "", "Machine state code (see docs/simulator.md)"),
    SignalSpec("good_count", Meaning.GOOD_COUNT, "pcs", "Cumulative good units"),
    SignalSpec("reject_count", Meaning.REJECT_COUNT, "pcs", "Cumulative rejected units"),
    SignalSpec("total_count", Meaning.TOTAL_COUNT, "pcs", "Cumulative units produced"),
    SignalSpec("power", Meaning.POWER_KW, "kW", "Active power"),
    SignalSpec("energy", Meaning.ENERGY_KWH, "kWh", "Active energy meter"),
    SignalSpec("vibration", Meaning.VIBRATION, "mm/s", "Spindle bearing vibration velocity RMS"),
    SignalSpec("temperature", Meaning.TEMPERATURE, "°C", "Spindle housing temperature"),
)
SIG_STATE, SIG_GOOD, SIG_REJECT, SIG_TOTAL, SIG_POWER, SIG_ENERGY, SIG_VIBRATION, SIG_TEMPERATURE = range(8)
SIGNALS_PER_MACHINE = len(MACHINE_SIGNALS)

METER_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("power", Meaning.POWER_KW, "kW", "Plant main incoming power"),
    SignalSpec("energy", Meaning.ENERGY_KWH, "kWh", "Plant main energy meter"),
)
METER_VALUE_PATHS = {"power": "kw", "energy": "kwh"}


@dataclass(frozen=True, slots=True)
class MachineSpec:
    area: str
    line: str
    cell: str
    name: str
    ideal_cycle_time_s: float
    run_kw: float  # active power while running at full speed
    reject_rate: float  # probability that a unit is rejected
    vibration_base: float  # healthy running vibration velocity RMS, mm/s
    machine_class: str = "iso20816_group2_rigid"

    @property
    def path(self) -> str:
        return f"{self.area}/{self.line}/{self.cell}"

    @property
    def target_rate_per_hour(self) -> float:
        # Planned output assumes ~85 % of the ideal rate, as production planners usually do.
        return round(3600.0 / self.ideal_cycle_time_s * 0.85, 1)


@dataclass(frozen=True, slots=True)
class PlantLayout:
    machines: tuple[MachineSpec, ...]
    enterprise: str = ENTERPRISE
    site: str = SITE
    timezone: str = TIMEZONE
    meter_base_kw: float = 18.0  # compressors, lighting, HVAC not metered per machine

    def signal_keys(self) -> list[tuple[str, str]]:
        """(cell_path, signal) for every signal, machines first in order, then the utility meter."""
        keys = [(m.path, s.name) for m in self.machines for s in MACHINE_SIGNALS]
        keys += [(METER_CELL, s.name) for s in METER_SIGNALS]
        return keys


_AREA_KINDS = {
    # area: (cell prefix, human name, ideal cycle times cycled over, running kW, reject rate, vibration)
    "machining": ("cnc", "CNC machining centre", (45.0, 52.0, 60.0, 38.0), (13.5, 15.0, 11.0, 12.5), 0.025),
    "assembly": ("asm", "Assembly station", (22.0, 24.0, 20.0, 26.0), (4.5, 5.5, 4.0, 5.0), 0.015),
}


def machine_spec(
    area: str, line: str, cell: str, position: int, *, ideal_cycle_time_s: float | None = None, name: str = ""
) -> MachineSpec:
    """Physical parameters of the ``position``-th (1-based) machine of a line, by the kind of its area."""
    _prefix, label, cycles, kws, reject = _AREA_KINDS.get(area, _AREA_KINDS["machining"])
    k = (position - 1) % len(cycles)
    return MachineSpec(
        area=area,
        line=line,
        cell=cell,
        name=name or f"{label} {position}",
        ideal_cycle_time_s=ideal_cycle_time_s or cycles[k],
        run_kw=kws[k],
        reject_rate=reject + 0.005 * k,
        vibration_base=1.6 + 0.25 * k,
    )


def demo_layout(machines_per_line: int = 4, lines_per_area: int = 1) -> PlantLayout:
    """The demo plant; the defaults give the 8-machine plant of the shared semantics."""
    if machines_per_line < 1 or lines_per_area < 1:
        raise ValueError("machines_per_line and lines_per_area must be at least 1")
    machines = []
    for area, (prefix, *_rest) in _AREA_KINDS.items():
        for li in range(1, lines_per_area + 1):
            for mi in range(1, machines_per_line + 1):
                machines.append(machine_spec(area, f"line-{li}", f"{prefix}-{mi:02d}", mi))
    return PlantLayout(tuple(machines))


def node_id(cell_path: str, signal: str, namespace_index: int = 2) -> str:
    """OPC-UA node id of a signal: ``ns=2;s=<area>.<line>.<cell>.<signal>``."""
    return f"ns={namespace_index};s={cell_path.replace('/', '.')}.{signal}"
