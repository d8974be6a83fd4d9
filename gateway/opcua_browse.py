"""``datafactory opcua browse``: list a server's variables and optionally emit a plant config for them.

Walks the address space from the Objects folder to ``depth`` levels, one Browse call per object, and reads the
data type and access level of all variables found in batched Read calls. The emitted config is a complete
plant config (with placeholder enterprise details to replace) that ``datafactory config validate`` accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from asyncua import Client, ua

from datafactory.config.models import OpcUaSecurity
from datafactory.errors import ConnectionLost
from gateway import opcua_session

_READ_CHUNK = 500


@dataclass(frozen=True, slots=True)
class BrowsedVariable:
    node_id: str
    path: str  # browse names from Objects, joined with '/'
    data_type: str
    access: str  # e.g. 'read', 'read,write'


async def browse(
    endpoint: str, security: OpcUaSecurity, auth: object, *, depth: int = 5, state_dir: Any = None
) -> list[BrowsedVariable]:
    from pathlib import Path

    client = await opcua_session.connect(endpoint, security, auth, state_dir=state_dir or Path(".df"))
    try:
        return await _walk(client, depth)
    except opcua_session.LIBRARY_ERRORS as err:
        raise ConnectionLost(endpoint, f"browse failed: {opcua_session.describe(err)}") from err
    finally:
        try:
            await client.disconnect()
        except opcua_session.LIBRARY_ERRORS:
            client.disconnect_socket()  # the server is gone already; nothing to release


async def _walk(client: Client, depth: int) -> list[BrowsedVariable]:
    found: list[tuple[str, str]] = []
    level: list[tuple[Any, str]] = [(client.nodes.objects, "Objects")]
    for _ in range(depth):
        next_level: list[tuple[Any, str]] = []
        for node, path in level:
            for ref in await node.get_children_descriptions():
                if ref.NodeId.NamespaceIndex == 0:
                    continue  # the standard Server object and types: not plant data
                child_path = f"{path}/{ref.BrowseName.Name}"
                if ref.NodeClass == ua.NodeClass.Variable:
                    found.append((ref.NodeId.to_string(), child_path))
                if ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                    next_level.append((client.get_node(ref.NodeId), child_path))
        level = next_level
        if not level:
            break
    out: list[BrowsedVariable] = []
    for start in range(0, len(found), _READ_CHUNK):
        part = found[start : start + _READ_CHUNK]
        nodes = [client.get_node(nid) for nid, _ in part]
        types = await client.read_attributes(nodes, ua.AttributeIds.DataType)
        access = await client.read_attributes(nodes, ua.AttributeIds.AccessLevel)
        for (nid, path), t, a in zip(part, types, access, strict=True):
            out.append(BrowsedVariable(nid, path, await type_name(client, t), _access(a)))
    return out


async def type_name(client: Client, dv: ua.DataValue) -> str:
    nodeid = dv.Value.Value if dv.Value is not None else None
    if not isinstance(nodeid, ua.NodeId):
        return "?"
    if nodeid.NamespaceIndex == 0 and isinstance(nodeid.Identifier, int):
        return ua.ObjectIdNames.get(nodeid.Identifier, str(nodeid.Identifier))
    return str((await client.get_node(nodeid).read_browse_name()).Name)


def _access(dv: ua.DataValue) -> str:
    bits = dv.Value.Value if dv.Value is not None and isinstance(dv.Value.Value, int) else 0
    parts = [name for flag, name in ((1, "read"), (2, "write"), (4, "history")) if bits & flag]
    return ",".join(parts) or "none"


def signal_name(browse_path: str, taken: set[str]) -> str:
    """A valid, unique signal name from the last browse name (``Spindle Power`` → ``spindle_power``)."""
    base = re.sub(r"[^a-z0-9_-]+", "_", browse_path.rsplit("/", 1)[-1].lower()).strip("_-")[:60] or "signal"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def emit_config(variables: list[BrowsedVariable], *, endpoint: str, cells: list[str], security: OpcUaSecurity) -> str:
    """A plant config binding the browsed variables to ``cells``: with one cell, every readable variable; with
    several, each variable to the cell whose id is a level of its browse path. A variable that matches no cell
    is bound to none (never guessed into another machine's cell) and listed in a comment at the end."""
    if not cells:
        raise ValueError("--emit-config needs at least one --cell area/line/cell")
    areas: dict[str, dict[str, list[str]]] = {}
    for cell in cells:
        area, line, machine = cell.split("/")
        areas.setdefault(area, {}).setdefault(line, []).append(machine)
    taken: dict[str, set[str]] = {c: set() for c in cells}
    nodes = []
    unmatched: list[str] = []
    for v in variables:
        if "read" not in v.access:
            continue
        levels = v.path.lower().split("/")
        target = cells[0] if len(cells) == 1 else next((c for c in cells if c.rsplit("/", 1)[-1] in levels), None)
        if target is None:
            unmatched.append(v.path)
            continue
        nodes.append(
            {
                "node_id": v.node_id,
                "cell": target,
                "signal": signal_name(v.path, taken[target]),
                "meaning": "generic",
                "description": f"{v.path} ({v.data_type})",
            }
        )
    doc = {
        "version": 1,
        "enterprise": {
            "id": "my-enterprise",
            "name": "REPLACE: registered legal name",
            "credit_code": "91350100M000100Y43",
            "industry_code": "C3484",
            "town": "REPLACE",
            "size_class": "small",
            "ownership": "private",
        },
        "site": {"id": "site-1"},
        "gateway": {"id": "gw-1"},
        "areas": [
            {"id": a, "lines": [{"id": ln, "cells": [{"id": c} for c in cs]} for ln, cs in lines.items()]}
            for a, lines in areas.items()
        ],
        "sources": [
            {
                "kind": "opcua",
                "id": "opcua-1",
                "endpoint": endpoint,
                "security": security.model_dump(mode="json", exclude_defaults=True)
                | {"policy": security.policy.value, "mode": security.mode.value},
                "nodes": nodes,
            }
        ],
    }
    header = "# Generated by 'datafactory opcua browse --emit-config'. Replace the enterprise placeholders and set\n"
    header += "# each signal's meaning and unit; then check it with 'datafactory config validate'.\n"
    body = header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if unmatched:
        body += f"# {len(unmatched)} readable variables match no --cell (no cell id in their browse path), not bound:\n"
        body += "".join(f"#   {path}\n" for path in unmatched)
    return body
