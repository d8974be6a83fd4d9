"""Sparkplug B payload protobuf (Eclipse Tahu ``sparkplug_b.proto``, package ``org.eclipse.tahu.protobuf``).

The message types are declared here with protobuf's ``descriptor_pb2`` — the same descriptor ``protoc`` would
produce for the fields we use — and encoded/decoded by the real protobuf runtime; there is no hand-written wire
code. Declared: ``Payload`` {timestamp, metrics, seq, uuid, body} and ``Payload.Metric`` {name, alias, timestamp,
datatype, is_historical, is_transient, is_null, and the scalar ``value`` oneof}. Metric metadata, properties,
data sets and templates (field numbers 8, 9, 17, 18, 19) are not declared: protobuf keeps them as unknown
fields, so such payloads still decode and their scalar metrics are read.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"

# Sparkplug B data types (Tahu DataType enum).
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14

_F = descriptor_pb2.FieldDescriptorProto
_SIGNED_BITS = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}


def _field(
    name: str, number: int, ftype: int, *, repeated: bool = False, type_name: str = "", oneof: int | None = None
) -> descriptor_pb2.FieldDescriptorProto:
    f = _F(name=name, number=number, type=ftype, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof
    return f


def _file() -> descriptor_pb2.FileDescriptorProto:
    metric = descriptor_pb2.DescriptorProto(
        name="Metric",
        field=[
            _field("name", 1, _F.TYPE_STRING),
            _field("alias", 2, _F.TYPE_UINT64),
            _field("timestamp", 3, _F.TYPE_UINT64),
            _field("datatype", 4, _F.TYPE_UINT32),
            _field("is_historical", 5, _F.TYPE_BOOL),
            _field("is_transient", 6, _F.TYPE_BOOL),
            _field("is_null", 7, _F.TYPE_BOOL),
            _field("int_value", 10, _F.TYPE_UINT32, oneof=0),
            _field("long_value", 11, _F.TYPE_UINT64, oneof=0),
            _field("float_value", 12, _F.TYPE_FLOAT, oneof=0),
            _field("double_value", 13, _F.TYPE_DOUBLE, oneof=0),
            _field("boolean_value", 14, _F.TYPE_BOOL, oneof=0),
            _field("string_value", 15, _F.TYPE_STRING, oneof=0),
            _field("bytes_value", 16, _F.TYPE_BYTES, oneof=0),
        ],
        oneof_decl=[descriptor_pb2.OneofDescriptorProto(name="value")],
    )
    payload = descriptor_pb2.DescriptorProto(
        name="Payload",
        field=[
            _field("timestamp", 1, _F.TYPE_UINT64),
            _field("metrics", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f".{PACKAGE}.Payload.Metric"),
            _field("seq", 3, _F.TYPE_UINT64),
            _field("uuid", 4, _F.TYPE_STRING),
            _field("body", 5, _F.TYPE_BYTES),
        ],
        nested_type=[metric],
    )
    return descriptor_pb2.FileDescriptorProto(
        name="sparkplug_b.proto", package=PACKAGE, syntax="proto2", message_type=[payload]
    )


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Payload: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))
"""The Sparkplug B ``Payload`` message class: ``Payload.FromString(raw)``, ``Payload().SerializeToString()``."""


def metric_value(metric: Any) -> object:
    """The metric's value as a Python number/bool/str (signed types sign-extended), or None when null/absent."""
    if metric.is_null:
        return None
    which = metric.WhichOneof("value")
    if which is None:
        return None
    value = getattr(metric, which)
    bits = _SIGNED_BITS.get(metric.datatype)
    if bits is not None and isinstance(value, int) and value >= 1 << (bits - 1):
        value -= 1 << bits  # Sparkplug carries signed integers in unsigned fields, two's complement
    return value
