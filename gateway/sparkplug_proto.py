"""Sparkplug B payload protobuf (Eclipse Tahu ``sparkplug_b.proto``, package ``org.eclipse.tahu.protobuf``).

The message types are declared here with protobuf's ``descriptor_pb2`` — the same descriptor ``protoc`` would
produce from Tahu's ``sparkplug_b.proto`` (field numbers checked against Tahu's generated JavaScript) — and
encoded/decoded by the real protobuf runtime; there is no hand-written wire code. Declared: ``Payload``
{timestamp, metrics, seq, uuid, body} and the nested ``Metric`` (with metadata, properties and every value
field), ``MetaData``, ``PropertyValue``, ``PropertySet``, ``PropertySetList``, ``DataSet`` (``DataSetValue``,
``Row``) and ``Template`` (``Parameter``). Only the ``extension_value`` fields are left out: protobuf keeps them
as unknown fields, and a metric whose value is an extension reads as having no value.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"

# Sparkplug B 3.0 data types (Tahu DataType enum).
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
UUID, DATASET, BYTES, FILE, TEMPLATE = 15, 16, 17, 18, 19
PROPERTYSET, PROPERTYSETLIST = 20, 21
DATATYPE_NAMES = {
    1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8", 6: "UInt16", 7: "UInt32", 8: "UInt64",
    9: "Float", 10: "Double", 11: "Boolean", 12: "String", 13: "DateTime", 14: "Text", 15: "UUID",
    16: "DataSet", 17: "Bytes", 18: "File", 19: "Template", 20: "PropertySet", 21: "PropertySetList",
}  # fmt: skip

_F = descriptor_pb2.FieldDescriptorProto
_P = f".{PACKAGE}.Payload"


def _field(
    name: str, number: int, ftype: int, *, repeated: bool = False, type_name: str = "", oneof: int | None = None
) -> descriptor_pb2.FieldDescriptorProto:
    f = _F(name=name, number=number, type=ftype, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof
    return f


def _msg(name: str, *fields: descriptor_pb2.FieldDescriptorProto, **kw: Any) -> descriptor_pb2.DescriptorProto:
    return descriptor_pb2.DescriptorProto(name=name, field=list(fields), **kw)


def _scalars(first: int) -> list[descriptor_pb2.FieldDescriptorProto]:
    """The scalar ``value`` oneof shared by DataSetValue, Parameter and PropertyValue, from field ``first`` on."""
    kinds = [
        ("int_value", _F.TYPE_UINT32),
        ("long_value", _F.TYPE_UINT64),
        ("float_value", _F.TYPE_FLOAT),
        ("double_value", _F.TYPE_DOUBLE),
        ("boolean_value", _F.TYPE_BOOL),
        ("string_value", _F.TYPE_STRING),
    ]
    return [_field(n, first + i, t, oneof=0) for i, (n, t) in enumerate(kinds)]


_VALUE_ONEOF = [descriptor_pb2.OneofDescriptorProto(name="value")]


def _file() -> descriptor_pb2.FileDescriptorProto:
    parameter = _msg(
        "Parameter",
        _field("name", 1, _F.TYPE_STRING),
        _field("type", 2, _F.TYPE_UINT32),
        *_scalars(3),
        oneof_decl=_VALUE_ONEOF,
    )
    template = _msg(
        "Template",
        _field("version", 1, _F.TYPE_STRING),
        _field("metrics", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f"{_P}.Metric"),
        _field("parameters", 3, _F.TYPE_MESSAGE, repeated=True, type_name=f"{_P}.Template.Parameter"),
        _field("template_ref", 4, _F.TYPE_STRING),
        _field("is_definition", 5, _F.TYPE_BOOL),
        nested_type=[parameter],
    )
    dataset_value = _msg("DataSetValue", *_scalars(1), oneof_decl=_VALUE_ONEOF)
    row = _msg("Row", _field("elements", 1, _F.TYPE_MESSAGE, repeated=True, type_name=f"{_P}.DataSet.DataSetValue"))
    dataset = _msg(
        "DataSet",
        _field("num_of_columns", 1, _F.TYPE_UINT64),
        _field("columns", 2, _F.TYPE_STRING, repeated=True),
        _field("types", 3, _F.TYPE_UINT32, repeated=True),
        _field("rows", 4, _F.TYPE_MESSAGE, repeated=True, type_name=f"{_P}.DataSet.Row"),
        nested_type=[dataset_value, row],
    )
    property_value = _msg(
        "PropertyValue",
        _field("type", 1, _F.TYPE_UINT32),
        _field("is_null", 2, _F.TYPE_BOOL),
        *_scalars(3),
        _field("propertyset_value", 9, _F.TYPE_MESSAGE, type_name=f"{_P}.PropertySet", oneof=0),
        _field("propertysets_value", 10, _F.TYPE_MESSAGE, type_name=f"{_P}.PropertySetList", oneof=0),
        oneof_decl=_VALUE_ONEOF,
    )
    property_set = _msg(
        "PropertySet",
        _field("keys", 1, _F.TYPE_STRING, repeated=True),
        _field("values", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f"{_P}.PropertyValue"),
    )
    property_set_list = _msg(
        "PropertySetList", _field("propertyset", 1, _F.TYPE_MESSAGE, repeated=True, type_name=f"{_P}.PropertySet")
    )
    metadata = _msg(
        "MetaData",
        _field("is_multi_part", 1, _F.TYPE_BOOL),
        _field("content_type", 2, _F.TYPE_STRING),
        _field("size", 3, _F.TYPE_UINT64),
        _field("seq", 4, _F.TYPE_UINT64),
        _field("file_name", 5, _F.TYPE_STRING),
        _field("file_type", 6, _F.TYPE_STRING),
        _field("md5", 7, _F.TYPE_STRING),
        _field("description", 8, _F.TYPE_STRING),
    )
    metric = _msg(
        "Metric",
        _field("name", 1, _F.TYPE_STRING),
        _field("alias", 2, _F.TYPE_UINT64),
        _field("timestamp", 3, _F.TYPE_UINT64),
        _field("datatype", 4, _F.TYPE_UINT32),
        _field("is_historical", 5, _F.TYPE_BOOL),
        _field("is_transient", 6, _F.TYPE_BOOL),
        _field("is_null", 7, _F.TYPE_BOOL),
        _field("metadata", 8, _F.TYPE_MESSAGE, type_name=f"{_P}.MetaData"),
        _field("properties", 9, _F.TYPE_MESSAGE, type_name=f"{_P}.PropertySet"),
        _field("int_value", 10, _F.TYPE_UINT32, oneof=0),
        _field("long_value", 11, _F.TYPE_UINT64, oneof=0),
        _field("float_value", 12, _F.TYPE_FLOAT, oneof=0),
        _field("double_value", 13, _F.TYPE_DOUBLE, oneof=0),
        _field("boolean_value", 14, _F.TYPE_BOOL, oneof=0),
        _field("string_value", 15, _F.TYPE_STRING, oneof=0),
        _field("bytes_value", 16, _F.TYPE_BYTES, oneof=0),
        _field("dataset_value", 17, _F.TYPE_MESSAGE, type_name=f"{_P}.DataSet", oneof=0),
        _field("template_value", 18, _F.TYPE_MESSAGE, type_name=f"{_P}.Template", oneof=0),
        oneof_decl=_VALUE_ONEOF,
    )
    payload = _msg(
        "Payload",
        _field("timestamp", 1, _F.TYPE_UINT64),
        _field("metrics", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f"{_P}.Metric"),
        _field("seq", 3, _F.TYPE_UINT64),
        _field("uuid", 4, _F.TYPE_STRING),
        _field("body", 5, _F.TYPE_BYTES),
        nested_type=[template, dataset, property_value, property_set, property_set_list, metadata, metric],
    )
    return descriptor_pb2.FileDescriptorProto(
        name="sparkplug_b.proto", package=PACKAGE, syntax="proto2", message_type=[payload]
    )


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Payload: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))
"""The Sparkplug B ``Payload`` message class: ``Payload.FromString(raw)``, ``Payload().SerializeToString()``."""


def _lean_file() -> descriptor_pb2.FileDescriptorProto:
    """A narrower view of the same wire format, for the data fast path (``gateway.sparkplug_fast``):
    ``Payload`` {timestamp, metrics, seq} with explicit presence, ``Metric`` {alias, timestamp, datatype} without
    presence and only the float/double value. Parsed with it and re-measured after dropping unknown fields, a
    payload keeps its size exactly when it holds nothing else — no name, null flag, other value, property,
    uuid or body — and no field explicitly zero, duplicated or non-minimally encoded: then every metric's alias,
    datatype and timestamp are present exactly when non-zero, and the full decoder would read the same values."""
    o = descriptor_pb2.OneofDescriptorProto
    lean = f".{PACKAGE}.lean.Payload"
    metric = _msg(
        "Metric",
        _field("alias", 2, _F.TYPE_UINT64),
        _field("timestamp", 3, _F.TYPE_UINT64),
        _field("datatype", 4, _F.TYPE_UINT32),
        _field("float_value", 12, _F.TYPE_FLOAT, oneof=0),
        _field("double_value", 13, _F.TYPE_DOUBLE, oneof=0),
        oneof_decl=[o(name="value")],
    )
    timestamp, seq = _field("timestamp", 1, _F.TYPE_UINT64, oneof=0), _field("seq", 3, _F.TYPE_UINT64, oneof=1)
    timestamp.proto3_optional = seq.proto3_optional = True
    payload = _msg(
        "Payload",
        timestamp,
        _field("metrics", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f"{lean}.Metric"),
        seq,
        nested_type=[metric],
        oneof_decl=[o(name="_timestamp"), o(name="_seq")],
    )
    return descriptor_pb2.FileDescriptorProto(
        name="sparkplug_b_lean.proto", package=f"{PACKAGE}.lean", syntax="proto3", message_type=[payload]
    )


_pool.Add(_lean_file())
LeanPayload: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.lean.Payload"))
"""The fast path's view of a data payload (see ``_lean_file``); never used to encode."""
