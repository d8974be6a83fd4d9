"""Simulators: the demo plant (event-driven model, OPC-UA server, MQTT meter, backfill) and a city of enterprises.
A service: imports only the core (``datafactory``); composed by ``app`` (``datafactory simulate|city``).

The demo plant's OPC-UA server is asyncua; its MQTT-native utility meter replays the model live (``docs/simulator.md``).
The city (``simulator.city``) writes a synthetic registry and monthly reports for the bureau (``docs/bureau.md``).

Public API::

    from simulator import PlantModel, SimOptions, demo_layout, SimulatorServer, load_emitted, backfill
"""

from simulator.layout import MachineSpec, PlantLayout, demo_layout, node_id
from simulator.model import Change, PlantModel, SimOptions
from simulator.plant_config import meter_topic, plant_config, plant_document
from simulator.shift_calendar import ShiftCalendar
from simulator.states import State
from simulator.truth import EmittedRecorder, GroundTruth, ShiftTruth, StateInterval, TruthEvent, load_emitted

__all__ = [
    "Change",
    "EmittedRecorder",
    "GroundTruth",
    "MachineSpec",
    "PlantLayout",
    "PlantModel",
    "ShiftCalendar",
    "ShiftTruth",
    "SimOptions",
    "State",
    "StateInterval",
    "TruthEvent",
    "demo_layout",
    "load_emitted",
    "meter_topic",
    "node_id",
    "plant_config",
    "plant_document",
]
