"""Resolve an OPC-UA source's folder subscriptions into nodes, on a connected client (at every connect, so a
changed address space is followed on reconnect).

A browse path is followed level by level from the Objects folder by browse name (``2:Name`` also matches the
namespace index); a level that is not there fails the source with the names that are, since only an operator
can fix that. Below the folder, variables are collected to ``depth`` levels (through objects, folders and
variables with components), filtered by the ``include`` glob on their browse name and by data type, and named
by ``datafactory.config.opcua_folders.folder_signal_name``.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from asyncua import Client, ua

from datafactory.config.models import OpcUaFolder, OpcUaNode, OpcUaSource
from datafactory.config.opcua_folders import folder_signal_name
from datafactory.errors import ConnectionLost
from gateway.opcua_browse import type_name

_READ_CHUNK = 500


async def resolve(client: Client, source: OpcUaSource) -> list[OpcUaNode]:
    """The nodes every folder of ``source`` stands for now, in browse-path order, named uniquely per cell."""
    taken: dict[str, set[str]] = {}
    for node in source.nodes:
        taken.setdefault(node.cell, set()).add(node.signal)
    listed = {n.node_id for n in source.nodes}
    out: list[OpcUaNode] = []
    for folder in source.folders:
        start = await _follow(client, source.endpoint, folder.browse_path)
        found = sorted(await _variables(client, start, folder.depth), key=lambda v: v[1])
        found = [v for v in found if fnmatch.fnmatchcase(v[2], folder.include) and v[0] not in listed]
        types = await _types(client, [v[0] for v in found])
        cell_taken = taken.setdefault(folder.cell, set())
        for (node_id, rel, _name), dtype in zip(found, types, strict=True):
            if folder.data_types and dtype not in folder.data_types:
                continue
            listed.add(node_id)
            out.append(_node(folder, node_id, folder_signal_name(folder.signal_prefix, rel, cell_taken), rel, dtype))
    return out


def _node(folder: OpcUaFolder, node_id: str, signal: str, rel: str, dtype: str) -> OpcUaNode:
    return OpcUaNode(
        node_id=node_id,
        cell=folder.cell,
        signal=signal,
        meaning=folder.meaning,
        unit=folder.unit,
        description=f"{folder.browse_path}/{rel} ({dtype})",
        sampling_interval_ms=folder.sampling_interval_ms,
        queue_size=folder.queue_size,
    )


def _matches(ref: ua.ReferenceDescription, level: str) -> bool:
    ns, sep, name = level.partition(":")
    if sep and ns.isdigit():
        return bool(ref.BrowseName.NamespaceIndex == int(ns) and ref.BrowseName.Name == name)
    return bool(ref.BrowseName.Name == level)


async def _follow(client: Client, endpoint: str, browse_path: str) -> Any:
    node, walked = client.nodes.objects, "Objects"
    for level in browse_path.split("/"):
        refs = await node.get_children_descriptions()
        match = next((r for r in refs if _matches(r, level)), None)
        if match is None:
            names = sorted({r.BrowseName.Name for r in refs if r.NodeId.NamespaceIndex != 0})
            raise ConnectionLost(
                endpoint,
                f"folder {browse_path!r}: no {level!r} under {walked} (there: {', '.join(names) or 'nothing'}); "
                "check the path with 'datafactory opcua browse'",
                retryable=False,
            )
        node, walked = client.get_node(match.NodeId), f"{walked}/{match.BrowseName.Name}"
    return node


async def _variables(client: Client, start: Any, depth: int) -> list[tuple[str, str, str]]:
    """(node id, browse path relative to ``start``, browse name) of every variable within ``depth`` levels."""
    found: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    level: list[tuple[Any, str]] = [(start, "")]
    for _ in range(depth):
        next_level: list[tuple[Any, str]] = []
        for node, path in level:
            for ref in await node.get_children_descriptions():
                nid = ref.NodeId.to_string()
                if ref.NodeId.NamespaceIndex == 0 or nid in seen:
                    continue  # standard nodes (types, properties of the standard model); each node once
                seen.add(nid)
                rel = f"{path}/{ref.BrowseName.Name}" if path else str(ref.BrowseName.Name)
                if ref.NodeClass == ua.NodeClass.Variable:
                    found.append((nid, rel, str(ref.BrowseName.Name)))
                if ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                    next_level.append((client.get_node(ref.NodeId), rel))
        level = next_level
        if not level:
            break
    return found


async def _types(client: Client, node_ids: list[str]) -> list[str]:
    out: list[str] = []
    for start in range(0, len(node_ids), _READ_CHUNK):
        nodes = [client.get_node(nid) for nid in node_ids[start : start + _READ_CHUNK]]
        for dv in await client.read_attributes(nodes, ua.AttributeIds.DataType):
            out.append(await type_name(client, dv))
    return out
