"""Folder subscriptions of an OPC-UA source: every variable under a browse path, resolved at each connect.

The rule for signal names (docs/gateway.md "Folder subscriptions"): the variable's browse path *below the
folder* ("Spindle/Power"), lower-cased, each run of characters outside ``a-z 0-9 _ -`` replaced by ``_``, the
levels joined by ``_``, leading and trailing ``_``/``-`` stripped, ``signal_prefix`` in front, cut to 64
characters; a name already taken in the cell (by a listed node, or an earlier variable in browse-path order)
gets ``_2``, ``_3``, ….
"""

from __future__ import annotations

import re

from pydantic import Field

from datafactory.config.base import StrictModel
from datafactory.contract.meanings import Meaning

_SLUG = re.compile(r"[^a-z0-9_-]+")


class OpcUaFolder(StrictModel):
    browse_path: str = Field(
        description="Browse names from the Objects folder to the folder or object, joined by '/' "
        "(e.g. 'Plant/Line1/Press01'); a level may name its namespace index as '2:Press01'.",
        min_length=1,
        pattern=r"^[^/]+(/[^/]+)*$",
    )
    cell: str = Field(description="Cell path 'area/line/cell' the variables belong to.")
    include: str = Field(
        default="*", description="Glob on the variables' browse names (case-sensitive; * ? [..]).", min_length=1
    )
    data_types: list[str] = Field(
        default_factory=list,
        description="Only variables of these OPC-UA data types (e.g. Double, Float, Int32, Boolean); empty = any.",
    )
    depth: int = Field(default=1, ge=1, le=10, description="Levels below the folder to look for variables.")
    signal_prefix: str = Field(
        default="", pattern=r"^[a-z0-9_-]{0,32}$", description="Put in front of every derived signal name."
    )
    meaning: Meaning = Field(default=Meaning.GENERIC, description="Meaning given to every variable found.")
    unit: str = Field(default="", description="Unit given to every variable found.")
    sampling_interval_ms: float | None = Field(
        default=None, ge=0, description="Server sampling interval; default is the source's."
    )
    queue_size: int = Field(default=10, ge=1, description="Server-side queue size of each monitored item.")


def folder_signal_name(prefix: str, relative_path: str, taken: set[str]) -> str:
    """The signal name of a variable at ``relative_path`` below its folder (see the module doc); adds it to
    ``taken``."""
    levels = [_SLUG.sub("_", level.lower()) for level in relative_path.split("/")]
    base = (prefix + "_".join(levels)).strip("_-")[:64].rstrip("_-") or "signal"
    name, i = base, 2
    while name in taken:
        suffix = f"_{i}"
        name, i = base[: 64 - len(suffix)] + suffix, i + 1
    taken.add(name)
    return name
