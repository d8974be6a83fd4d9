"""Plant and edge configuration: pydantic models (the single declaration), loading and validation.
Core: imports nothing outside ``datafactory``; any service may import it.

Use ``load_config(path)``: it runs the schema (types, unknown keys, required choices) and then the cross-field
rules (references between assets and sources, uniqueness), and reports every problem with its key path.
"""

from datafactory.config.loader import load_config, load_config_text, validate_document
from datafactory.config.models import (
    Auth,
    CellConfig,
    Deadband,
    EnterpriseConfig,
    GatewayConfig,
    MqttJsonMapping,
    MqttJsonSource,
    OpcUaNode,
    OpcUaSecurity,
    OpcUaSource,
    PlantConfig,
    SignalBinding,
    Source,
)

__all__ = [
    "Auth",
    "CellConfig",
    "Deadband",
    "EnterpriseConfig",
    "GatewayConfig",
    "MqttJsonMapping",
    "MqttJsonSource",
    "OpcUaNode",
    "OpcUaSecurity",
    "OpcUaSource",
    "PlantConfig",
    "SignalBinding",
    "Source",
    "load_config",
    "load_config_text",
    "validate_document",
]
