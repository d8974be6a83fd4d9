"""The demo pipeline: simulated plant → edge gateway → broker → ingest → database, as child processes.

Every stage is the real service started through its own CLI (``datafactory simulate run``, ``gateway run``,
``ingest run``) with ``DATAFACTORY_DATABASE_URL`` / ``DATAFACTORY_MQTT_URL`` in its environment, exactly as an
operator would run it; the demo only wires them together. The gateway reads a runtime copy of the demo plant
config whose OPC-UA endpoint points at this run's simulator port and whose enterprise id can be overridden so
that two demos sharing one broker stay apart.
"""

from __future__ import annotations

import importlib
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import yaml

from app.cli.main import COMMANDS
from app.harness.children import Child
from app.harness.process import free_port

DEMO_CONFIG = Path("edge_configs/demo-plant.yaml")
MIXED_CONFIG = Path("edge_configs/mixed-plant.yaml")
# Source kinds whose values the gateway stamps when it polls: a plant with them runs in real time.
POLLED_KINDS = frozenset({"modbus", "s7"})
# ``datafactory ingest run`` prints this once the broker has acknowledged its subscription.
_INGEST_READY = "running on"
_INGEST_READY_TIMEOUT_S = 30.0
_SIMULATOR_READY = "OPC-UA server opc.tcp://"
_SIMULATOR_READY_TIMEOUT_S = 60.0
# Wall seconds the simulator may run before the first samples are published (server and gateway start-up).
STARTUP_ALLOWANCE_S = 30.0
_ENDPOINT_RE = re.compile(r"^(opc\.tcp://)([^/:]+)(:\d+)?(/.*)?$")


def command_available(name: str) -> str | None:
    """None if ``datafactory <name>`` is usable in this build, else why not."""
    target = COMMANDS.get(name)
    if target is None:
        return f"'{name}' is not a datafactory command"
    module_name, attr = target[0].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        return f"{module_name} cannot be imported ({err})"
    if not isinstance(getattr(module, attr, None), click.Command):
        return f"{module_name} has no command {attr!r}"
    return None


def subcommand_available(group: str, sub: str) -> str | None:
    """None if ``datafactory <group> <sub>`` exists, else why not."""
    reason = command_available(group)
    if reason is not None:
        return reason
    module_name, attr = COMMANDS[group][0].split(":")
    command = getattr(importlib.import_module(module_name), attr)
    if isinstance(command, click.Group) and sub not in command.commands:
        return f"'datafactory {group}' has no '{sub}' subcommand yet"
    return None


def option_names(group: str, sub: str) -> set[str]:
    """The long option names (``--speed``) ``datafactory <group> <sub>`` accepts, to pass only what it knows."""
    module_name, attr = COMMANDS[group][0].split(":")
    command = getattr(importlib.import_module(module_name), attr)
    if isinstance(command, click.Group):
        command = command.commands[sub]
    return {opt for param in command.params for opt in getattr(param, "opts", []) if opt.startswith("--")}


def runtime_config(
    source: Path, target: Path, *, opcua_port: int, device_prefix: str, enterprise: str | None,
    port: Callable[[], int] = free_port,
) -> dict[str, Any]:
    """Write a copy of the plant config for this run and return it: OPC-UA endpoints on 127.0.0.1:<opcua_port>,
    MQTT device topics under ``device_prefix`` (their first level), Modbus TCP and S7 servers on free loopback
    ports of this run (the simulator serves them where the config says), and optionally another enterprise id."""
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    for src in doc.get("sources", []):
        if src.get("kind") in POLLED_KINDS and src.get("transport", "tcp") == "tcp" and "port" in src:
            src["host"], src["port"] = "127.0.0.1", port()
        if src.get("kind") == "opcua" and isinstance(src.get("endpoint"), str):
            match = _ENDPOINT_RE.match(src["endpoint"])
            if match:
                src["endpoint"] = f"{match.group(1)}127.0.0.1:{opcua_port}{match.group(4) or ''}"
        if src.get("kind") == "mqtt_json":
            for mapping in src.get("mappings", []):
                topic = mapping.get("topic")
                if isinstance(topic, str) and "/" in topic:
                    mapping["topic"] = device_prefix + topic[topic.index("/") :]
    if enterprise:
        doc["enterprise"]["id"] = enterprise
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return doc


@dataclass
class Pipeline:
    """Starts and stops the demo's child processes; ``unavailable`` names the stages this build lacks."""

    database_url: str
    mqtt_url: str
    work_dir: Path
    speed: float
    config_source: Path = DEMO_CONFIG
    enterprise: str | None = None
    children: dict[str, Child] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    duration_s: float = 60.0
    analog_period_s: float = 1.0
    opcua_port: int = 0
    sim_start: datetime | None = None
    not_before: datetime | None = None  # newest sample already stored for this plant
    overlap_until: datetime | None = None  # set when this run re-simulates time an earlier run stored
    simulator_started: float | None = None  # time.monotonic() when the simulator was started
    simulator_stopped: float | None = None
    # The simulated meter publishes under <device_prefix>/…: unique per run so demos sharing a broker stay apart.
    device_prefix: str = field(default_factory=lambda: f"sim-{uuid.uuid4().hex[:8]}")
    plant: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATAFACTORY_DATABASE_URL": self.database_url,
            "DATAFACTORY_MQTT_URL": self.mqtt_url,
            "DATAFACTORY_STATE_DIR": str(self.work_dir / "state"),
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def enterprise_id(self) -> str:
        return str(self.plant.get("enterprise", {}).get("id", self.enterprise or ""))

    @property
    def config_path(self) -> Path:
        """The runtime copy of the plant config the gateway reads."""
        return self.work_dir / "demo-plant.yaml"

    @property
    def realtime(self) -> bool:
        """True when the plant has polled machines (Modbus/S7): the gateway stamps their values with its own
        clock, so simulated time is the wall clock (speed 1, starting now)."""
        return any(src.get("kind") in POLLED_KINDS for src in self.plant.get("sources", []))

    def log(self, name: str) -> Path:
        return self.work_dir / "logs" / f"{name}.log"

    def prepare(self) -> None:
        """Check which stages this build has and write the runtime config (no process is started)."""
        for group, sub in (("ingest", "run"), ("simulate", "run"), ("gateway", "run")):
            reason = subcommand_available(group, sub)
            if reason is not None:
                self.unavailable[group] = reason
        self.opcua_port = free_port()
        if not self.config_source.exists():
            self.unavailable.setdefault("simulate", f"{self.config_source} does not exist yet")
            self.unavailable.setdefault("gateway", f"{self.config_source} does not exist yet")
        else:
            self.plant = runtime_config(
                self.config_source,
                self.config_path,
                opcua_port=self.opcua_port,
                device_prefix=self.device_prefix,
                enterprise=self.enterprise,
            )

    def start(self, *, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Start ingest and the simulator, wait until both are ready, then start the gateway.
        ``cancelled()`` (e.g. Ctrl-C was pressed) cuts the waiting short and starts nothing more."""
        if not self.opcua_port:
            self.prepare()
        if cancelled():
            return
        # Ingest and the simulator start side by side (the simulator publishes nothing under df/v1/); the gateway,
        # the only publisher of samples, starts once ingest's subscription exists — or the first batches would
        # have no one to go to — and the OPC-UA server listens.
        if "ingest" not in self.unavailable:
            self._spawn("ingest", self._ingest_args())
        if "simulate" not in self.unavailable:
            self._spawn("simulate", self._simulator_args())
        if "simulate" in self.children:  # first: the moment it is ready is when its clock started
            self.children["simulate"].wait_for_output(
                _SIMULATOR_READY, _SIMULATOR_READY_TIMEOUT_S, cancelled=cancelled
            )
            # The simulator's clock starts with its server, just before it prints the ready line.
            self.simulator_started = time.monotonic()
        if "ingest" in self.children:
            self.children["ingest"].wait_for_output(_INGEST_READY, _INGEST_READY_TIMEOUT_S, cancelled=cancelled)
        if "gateway" not in self.unavailable and not cancelled():
            self._spawn("gateway", ["gateway", "run", "--config", str(self.config_path)])

    def _ingest_args(self) -> list[str]:
        args = ["ingest", "run"]
        known = option_names("ingest", "run")
        if "--topic-filter" in known and self.enterprise_id:
            args += ["--topic-filter", f"df/v1/{self.enterprise_id}/#"]
        if "--worker" in known:
            args += ["--worker", f"demo-{self.enterprise_id or 'plant'}"]
        return args

    def _simulator_args(self) -> list[str]:
        start = self.simulated_start(datetime.now(UTC))
        args = [
            "simulate", "run",
            "--port", str(self.opcua_port),
            "--speed", f"{self.speed:g}",
            "--start", start.isoformat(timespec="seconds"),
            "--analog-period-s", f"{self.analog_period_s:g}",
        ]  # fmt: skip
        # With the runtime config the simulator serves exactly the plant the gateway reads (a custom --config too)
        # and publishes the meter on the topic the config maps.
        if "--config" in option_names("simulate", "run"):
            return [*args, "--config", str(self.config_path)]
        return [*args, "--device-topic-prefix", self.device_prefix]

    def simulated_start(self, now: datetime) -> datetime:
        """Where simulated time starts so that it ends behind the wall clock, never ahead of it.

        The plant runs ``duration × speed`` simulated seconds once the first samples flow, but the simulator's
        clock already runs while the OPC-UA server and the gateway come up: starting ``(duration +
        STARTUP_ALLOWANCE_S) × speed`` before now leaves room for a start-up that slow. Should the data still
        reach the wall clock, the demo stops the plant early. The data is recent history, which is what
        dashboards and analytics show, and nothing trips ingest's future-timestamp window. A rerun whose
        earlier data reaches past that start overlaps it (``overlap_until``; samples at times already stored
        are kept once) rather than continuing after it into the future, as it once did."""
        start = now.replace(microsecond=0) - timedelta(seconds=(self.duration_s + STARTUP_ALLOWANCE_S) * self.speed)
        if self.realtime:  # polled values are stamped by the gateway's clock: the plant's time is the wall clock
            start = now.replace(microsecond=0)
        self.overlap_until = self.not_before if self.not_before is not None and self.not_before >= start else None
        self.sim_start = start
        return start

    def _spawn(self, name: str, args: list[str]) -> None:
        child = Child(name, args, log_path=self.log(name), env=self.env)
        child.start()
        self.children[name] = child

    def sim_clock(self) -> datetime | None:
        """The simulator's clock now (or when it was stopped): ``sim_start`` plus the time since its server
        started × speed (its replay starts there and never runs ahead of that; it may lag behind under load)."""
        if self.sim_start is None or self.simulator_started is None:
            return None
        until = self.simulator_stopped if self.simulator_stopped is not None else time.monotonic()
        return self.sim_start + timedelta(seconds=(until - self.simulator_started) * self.speed)

    def failed(self) -> dict[str, str]:
        """Children that exited on their own, with the tail of their log."""
        failed = {}
        for name, child in self.children.items():
            if child.returncode is not None:
                last = [line for line in child.log_tail(20).splitlines() if line.strip()]
                failed[name] = f"exited with code {child.returncode}: {last[-1] if last else '(no output)'}"
        return failed

    def stop_producers(self) -> None:
        for name in ("gateway", "simulate"):  # the gateway first: it flushes what it read
            if name in self.children:
                if name == "simulate" and self.simulator_stopped is None:
                    self.simulator_stopped = time.monotonic()
                self.children[name].stop()

    def stop(self) -> None:
        self.stop_producers()
        if "ingest" in self.children:
            self.children["ingest"].stop()
