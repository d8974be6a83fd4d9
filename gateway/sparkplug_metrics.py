"""The bound metrics of one Sparkplug source, and one message's metrics turned into readings.

``MetricTable`` knows which signal each (edge node, device, metric) feeds: the config's bindings, plus the
metrics learned from births (``learn``). Births also tell each binding its **declared type** when the config
gives no ``signal_type``: the Sparkplug datatype decides (``learned_type``): Int8…Int64, UInt8…UInt32 and
DateTime → int64, UInt64 → uint64, Boolean → bool, String/Text/UUID → string, Float/Double → float64; an integer
or boolean with a fractional scale or an offset stays float64, as for Modbus and S7. The retained meta tells
ingest these types, so a 64-bit counter past 2^53 is stored exactly, not rounded through a float. The meta is
published before the first data that needs it (the adapter's ``on_meta_change``, called at the birth), and the
learned types are kept in ``<state dir>/<source id>.sparkplug-types.json``: after a restart the meta announces
the types learned before, instead of float64 until the next birth — buffered typed samples replayed ahead of
that birth would otherwise be refused by ingest as type mismatches.

``decode`` reads one message's metrics (names or aliases, datatypes from the birth, templates flattened) into
readings, refusing what cannot be stored with a reason (``Refused``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path
from typing import Any

import orjson

from datafactory.config.models import SignalBinding, SparkplugMetric, SparkplugSource
from datafactory.contract.quality import BAD
from datafactory.contract.sample import Sample, new_sample
from datafactory.contract.values import SignalType
from gateway.normalise import Normaliser
from gateway.sources import Reading
from gateway.sparkplug_decode import Decoded, Refused, flatten, unit_and_description
from gateway.sparkplug_proto import (
    BOOLEAN,
    DATETIME,
    DOUBLE,
    FLOAT,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    TEMPLATE,
    TEXT,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    UUID,
)
from gateway.sparkplug_state import DeviceState, binding_with, learned_name

_log = logging.getLogger(__name__)
_FLOAT_FIELDS = frozenset(("double_value", "float_value"))
_FLOAT_TYPES = frozenset((DOUBLE, FLOAT))
_INT_TYPES = frozenset((INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, DATETIME))
_STRING_TYPES = frozenset((STRING, TEXT, UUID))
Key = tuple[str, str, str]  # (edge node, device, metric)


def learned_type(datatype: int, binding: SignalBinding) -> SignalType | None:
    """The declared type a metric's Sparkplug datatype implies for ``binding`` (None: no time-series type)."""
    if datatype in _FLOAT_TYPES:
        return SignalType.FLOAT64
    if datatype in _STRING_TYPES:
        return SignalType.STRING
    if datatype in _INT_TYPES or datatype == UINT64:
        if not binding.scales_to_integers():
            return SignalType.FLOAT64
        return SignalType.UINT64 if datatype == UINT64 else SignalType.INT64
    if datatype == BOOLEAN:
        return SignalType.FLOAT64 if binding.is_scaled() else SignalType.BOOL
    return None


@dataclass(slots=True)
class Decoding:
    """What one message's metrics became."""

    out: list[Reading] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    newest_us: int = 0  # newest sample time
    meta_changed: bool = False  # a binding gained a unit, a description, a type, or a signal was learned


class MetricTable:
    def __init__(self, config: SparkplugSource, *, types_file: Path | None) -> None:
        self.config = config
        self.metrics: list[SignalBinding] = list(config.metrics)
        self.normalisers = [Normaliser(m) for m in self.metrics]
        self.keys: list[Key] = [(m.edge_node, m.device, m.metric) for m in config.metrics]
        self.index: dict[Key, int] = {k: i for i, k in enumerate(self.keys)}
        self._taken: dict[str, set[str]] = {}
        for m in config.metrics:
            self._taken.setdefault(m.cell, set()).add(m.signal)
        self.learned = 0
        self.learn_refused = 0
        self._learned_pending = False
        self._types_file = types_file
        self._types: dict[Key, SignalType] | None = None  # learned types, read on first use (no I/O here)

    # ---- learned declared types ----------------------------------------------------------------------------
    def _known_types(self) -> dict[Key, SignalType]:
        if self._types is None:
            self._types = self._load_types()
            for key, t in self._types.items():
                i = self.index.get(key)
                if i is not None:
                    self._set_type(i, t)
        return self._types

    def _load_types(self) -> dict[Key, SignalType]:
        if self._types_file is None:
            return {}
        try:
            doc = orjson.loads(self._types_file.read_bytes())
            return {(str(n), str(d), str(m)): SignalType(t) for n, d, m, t in doc}
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError, ValueError, TypeError) as err:
            _log.warning("ignoring %s (%s): signal types are learned again from the next births", self._types_file, err)
            return {}

    def _save_types(self, types: dict[Key, SignalType]) -> None:
        if self._types_file is None:
            return
        tmp = self._types_file.with_suffix(".tmp")
        try:
            self._types_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(orjson.dumps(sorted([*k, t.value] for k, t in types.items())))
            os.replace(tmp, self._types_file)
        except OSError as err:
            _log.warning("cannot keep learned signal types in %s: %s", self._types_file, err)

    def _set_type(self, i: int, t: SignalType) -> bool:
        """Declare binding ``i`` as ``t`` unless the config declared its type. True if it changed."""
        b = self.metrics[i]
        if (i < len(self.config.metrics) and self.config.metrics[i].signal_type is not None) or b.declared_type() is t:
            return False
        self.metrics[i] = b = b.model_copy(update={"signal_type": t})
        self.normalisers[i] = Normaliser(b)
        return True

    def _learn_type(self, i: int, datatype: int) -> bool:
        types = self._known_types()
        t = learned_type(datatype, self.metrics[i])
        if t is None or not self._set_type(i, t):
            return False
        types[self.keys[i]] = t
        return True

    def bindings(self) -> list[SignalBinding]:
        self._known_types()
        return list(self.metrics)

    # ---- learned metrics -----------------------------------------------------------------------------------
    def learn(self, node_id: str, device: str, name: str) -> bool:
        learn = self.config.learn
        if learn is None or (learn.edge_nodes and node_id not in learn.edge_nodes):
            return False
        if name == "bdSeq" or name.startswith("Node Control/"):
            return False
        if self.learned >= learn.max_metrics:
            self.learn_refused += 1
            return False
        taken = self._taken.setdefault(learn.cell, set())
        signal = learned_name(node_id, device, name, taken)
        if signal is None:
            self.learn_refused += 1
            return False
        binding = SparkplugMetric(
            edge_node=node_id, device=device, metric=name, cell=learn.cell, signal=signal, meaning=learn.meaning
        )
        taken.add(signal)
        self.index[(node_id, device, name)] = len(self.metrics)
        self.keys.append((node_id, device, name))
        self.metrics.append(binding)
        self.normalisers.append(Normaliser(binding))
        self.learned += 1
        self._learned_pending = True
        return True

    # ---- one message ---------------------------------------------------------------------------------------
    def decode(self, node_id: str, device: str, dev: DeviceState, msg: Any, received: int, *, birth: bool) -> Decoding:
        """The readings of one born device's (or node's) message; on a birth, its aliases, datatypes and bound
        metrics are recorded in ``dev`` first."""
        aliases, types, index = dev.aliases, dev.types, self.index
        default_ts = int(msg.timestamp) if msg.HasField("timestamp") else None
        default_us = default_ts * 1000 if default_ts is not None else received
        result = Decoding()
        decoded: list[Decoded] = []
        out, refused = result.out, result.refused
        norms, newest = self.normalisers, 0
        fast = dev.float_aliases if not birth else {}
        for m in msg.metrics:
            if fast:
                # Fast path for the common data message: a Float/Double by alias, no name, datatype from the birth.
                # A field left at its default (0) is looked at again with HasField: absent and explicit 0 differ.
                which = m.WhichOneof("value")
                if which in _FLOAT_FIELDS:
                    alias, dt = m.alias, m.datatype
                    i = fast.get(alias)
                    if (
                        i is not None
                        and (alias or m.HasField("alias"))
                        and (dt in _FLOAT_TYPES or (dt == 0 and not m.HasField("datatype")))
                        and not m.HasField("name")
                        and not m.is_null
                    ):
                        ts = m.timestamp
                        t = ts * 1000 if ts or m.HasField("timestamp") else default_us
                        newest = max(newest, t)
                        norm, v = norms[i], getattr(m, which)
                        if norm.passthrough and isfinite(v):  # what apply() returns, without the call
                            out.append((norm.cell, new_sample(Sample, (norm.signal, t, v, 0))))
                            continue
                        sample = norm.apply(v, t)
                        if sample is not None:
                            out.append((norm.cell, sample))
                        continue
            if m.HasField("name"):
                name = m.name
            elif m.HasField("alias") and int(m.alias) in aliases:
                name = aliases[int(m.alias)]
            else:
                refused.append(Refused(f"alias {m.alias}", "unknown_alias", "no name and no alias known from a birth"))
                continue
            if birth:
                types[name] = int(m.datatype)
                if m.HasField("alias"):
                    aliases[int(m.alias)] = name
            datatype = int(m.datatype) if m.HasField("datatype") else types.get(name)
            if datatype is None:
                refused.append(Refused(name, "unknown_datatype", "no datatype here nor in the birth"))
                continue
            if datatype == TEMPLATE:
                flatten(name, m, datatype, default_ts, out=decoded, refused=refused)
                continue
            key = (node_id, device, name)
            if key not in index and not (birth and self.learn(node_id, device, name)):
                continue  # not bound: not decoded, never stored
            flatten(name, m, datatype, default_ts, out=decoded, refused=refused)
        if birth:  # alias 0 is left to the general path: the lean view cannot tell it from no alias
            dev.layout, dev.lean_size, dev.layout_tried = None, 0, 0  # the fast paths start again
            dev.float_aliases = {
                a: i
                for a, name in aliases.items()
                if a and types.get(name) in _FLOAT_TYPES and (i := index.get((node_id, device, name))) is not None
            }
        typed = False
        for d in decoded:
            i = index.get((node_id, device, d.name))
            if i is None and birth and self.learn(node_id, device, d.name):
                i = index[(node_id, device, d.name)]
            if i is None:
                continue
            if birth:
                dev.born_bound[d.name] = i
                if self._learn_type(i, d.datatype):
                    typed = True
                if d.props:
                    unit, description = unit_and_description(d.props)
                    updated = binding_with(self.metrics[i], unit, description)
                    if updated is not self.metrics[i]:
                        self.metrics[i], result.meta_changed = updated, True
            t = d.timestamp_ms * 1000 if d.timestamp_ms is not None else received
            newest = max(newest, t)
            sample = norms[i].apply(d.value, t, BAD if d.value is None else 0)
            if sample is not None:
                out.append((self.metrics[i].cell, sample))
        if typed:
            self._save_types(self._known_types())
        result.newest_us = newest
        result.meta_changed |= typed or (birth and self._learned_pending)
        if birth:
            self._learned_pending = False
        return result
