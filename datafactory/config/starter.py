"""Starter plant configs for ``datafactory config init [KIND…]``: commented, valid, ready to edit.

Every value is a working example (the sample enterprise, one moulding machine, 127.0.0.1 endpoints) so the
file passes ``config validate`` as written; the comments say what to change. Each source kind has one snippet
binding the same machine's power and state/counter, so a config with several kinds shows each side by side.
``tests/test_config_init.py`` validates every kind and every combination with our loader and check-jsonschema.
"""

from __future__ import annotations

from datafactory.config.models import SOURCE_KINDS

HEADER = """\
# Plant config: one enterprise site, its machines and where their signals come from.
# Written by `datafactory config init`; every key is documented in docs/config-reference.md.
# Check it with `datafactory config validate FILE`; deploy it with `datafactory config deploy FILE`.
# Editors: the line below points the YAML language server at the JSON Schema (`datafactory config schema`).
# yaml-language-server: $schema={schema}
version: 1
enterprise:
  id: acme                      # lower-case name used in topics and SQL: your enterprise
  name: 东莞市示例精密制造有限公司    # registered legal name
  credit_code: 91350100M000100Y43  # unified social credit code (18 characters; the check character is verified)
  industry_code: C3484          # GB/T 4754-2017: section letter plus class digits
  town: 松山湖                    # town, street or district (镇街)
  industrial_park: ""           # empty when not in a park
  size_class: small             # large | medium | small | micro
  ownership: private            # state_owned | collective | private | hmt_invested | foreign_invested | …
  timezone: Asia/Shanghai       # shifts and calendars are plant-local
site:
  id: dg-1                      # this site (plant), used in topics
  name: Dongguan plant 1
gateway:
  id: gw-1                      # the edge gateway that reads this site; `config deploy` targets it
  buffer_max_mb: 512            # store-and-forward buffer on disk while the broker is away
areas:                          # ISA-95: area / line / cell (machine); bindings name cells by this path
  - id: moulding
    lines:
      - id: line-1
        cells:
          - id: imm-01
            name: Injection moulding machine 1
            ideal_cycle_time_s: 30.0   # seconds per unit at full speed: OEE performance needs it
sources:
"""

SNIPPETS = {
    "opcua": """\
  - kind: opcua                 # an OPC-UA server (PLC, SCADA, the simulator)
    id: imm-plc
    endpoint: opc.tcp://127.0.0.1:4840/
    # No insecure default: write it out. In production use a secure policy and pin the server:
    #   security: {policy: basic256sha256, mode: sign_and_encrypt, trusted_server_fingerprints: [<sha256>]}
    security: {policy: none, mode: none}
    # auth: {kind: username, username_env: OPCUA_USER, password_env: OPCUA_PASSWORD}  (names, never secrets)
    nodes:                      # `datafactory opcua browse ENDPOINT --emit-config` lists the real node ids
      - {node_id: "ns=2;s=IMM01.Power", cell: moulding/line-1/imm-01, signal: power, meaning: power_kw, unit: kW}
      - {node_id: "ns=2;s=IMM01.State", cell: moulding/line-1/imm-01, signal: state, meaning: machine_state}
""",
    "mqtt_json": """\
  - kind: mqtt_json             # devices publishing JSON over MQTT
    id: imm-meter
    broker_url: ""              # empty: the platform broker; else mqtt://host:port (credentials via *_env)
    mappings:
      - topic: meters/imm-01    # + and # wildcards allowed
        value_path: data.kw     # dotted path into the JSON payload
        timestamp_path: ts
        timestamp_format: epoch_ms   # epoch_ms | epoch_s | epoch_us | iso8601 | receive_time
        cell: moulding/line-1/imm-01
        signal: meter_power
        meaning: power_kw
        unit: kW
""",
    "sparkplug": """\
  - kind: sparkplug             # Sparkplug B edge nodes
    id: imm-edge
    group_id: moulding          # second topic level: spBv1.0/<group_id>/…
    metrics:                    # or `learn: {cell: …}` to register every metric the nodes birth
      - {edge_node: edge-1, device: imm-01, metric: Power, cell: moulding/line-1/imm-01, signal: edge_power,
         meaning: power_kw, unit: kW}
      - {edge_node: edge-1, device: imm-01, metric: Shots, cell: moulding/line-1/imm-01, signal: shots,
         meaning: good_count}
""",
    "modbus": """\
  - kind: modbus                # Modbus TCP (or RTU: transport: rtu, serial_port: /dev/ttyUSB0)
    id: imm-modbus
    host: 127.0.0.1
    port: 502
    poll_groups:
      - {name: default, interval_ms: 1000}
    registers:                  # 0-based addresses: holding register 40001 is address 0
      # `datafactory modbus scan` shows a register range decoded in every byte order
      - {unit_id: 1, table: holding_register, address: 0, data_type: float32, byte_order: CDAB,
         cell: moulding/line-1/imm-01, signal: modbus_power, meaning: power_kw, unit: kW}
      - {unit_id: 1, table: holding_register, address: 2, data_type: uint32,
         cell: moulding/line-1/imm-01, signal: modbus_count, meaning: good_count}
""",
    "s7": """\
  - kind: s7                    # a Siemens S7 PLC (ISO-on-TCP, port 102)
    id: imm-s7
    host: 127.0.0.1
    rack: 0
    slot: 1                     # S7-1200/1500: rack 0 slot 1; S7-300: rack 0 slot 2
    items:                      # `datafactory s7 read ADDRESS` checks one address on site
      - {address: "DB10.DBD4:REAL", cell: moulding/line-1/imm-01, signal: s7_power, meaning: power_kw, unit: kW}
      - {address: "DB10.DBD8:DINT", cell: moulding/line-1/imm-01, signal: s7_count, meaning: good_count}
""",
}

DEFAULT_SCHEMA_REF = "edge_configs/schema/plant-config.schema.json"


def starter_config(kinds: list[str], *, schema_ref: str = DEFAULT_SCHEMA_REF) -> str:
    """A commented plant config with one source of each kind in ``kinds`` (default: opcua)."""
    unknown = [k for k in kinds if k not in SNIPPETS]
    if unknown:
        raise ValueError(f"unknown source kind {unknown[0]!r} (known: {', '.join(sorted(SNIPPETS))})")
    chosen = list(dict.fromkeys(kinds or ["opcua"]))
    return HEADER.format(schema=schema_ref) + "".join(SNIPPETS[k] for k in chosen)


def missing_kinds() -> set[str]:
    """Source kinds of the registry without a starter snippet (a test keeps this empty)."""
    return set(SOURCE_KINDS) - set(SNIPPETS)
