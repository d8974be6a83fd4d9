"""The resource catalogue (资源目录): every dataset the platform holds, generated from the database catalog.

Each entry joins a ``DatasetSpec`` (provider, collection, frequency, deadline, sharing, grade — written once in
``bureau.catalog.specs``) with what the database says: the relations that exist, their columns and types. Every
table and view of the schema is in some entry (unspecified ones get a graded default), one entry per connected
plant covers its raw samples, and ``to_dcat`` renders the catalogue as DCAT-style JSON validated against the
committed ``bureau/catalog/catalog.schema.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import psycopg

from bureau.catalog.specs import GRADE_ACCESS, GRADE_LABELS, SPECS, DatasetSpec, default_spec, plant_samples_spec
from datafactory.db.rls import discover
from datafactory.errors import DataFactoryError

SCHEMA_PATH = Path(__file__).with_name("catalog.schema.json")
CATALOG_URI = "urn:datafactory:catalog"
DATASET_URI = "urn:datafactory:dataset:"

_IDENTITY = frozenset({"credit_code", "key", "enterprise", "site", "enterprise_info"})
_NAMED_ENTITIES = frozenset({"bureau_enterprise_versions", "plants", "cells"})  # there `name` names one enterprise
_TIME_NAMES = frozenset({"time", "time_end", "month", "valid_from", "valid_to", "made_for", "period_start",
                         "period_end", "shift_start", "shift_end"})
_NUMERIC = ("integer", "bigint", "smallint", "double precision", "numeric", "real")


class CatalogError(DataFactoryError):
    """A catalogue entry was asked for that does not exist, or an export failed its schema."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    category: str
    grade: int


@dataclass(frozen=True)
class Entry:
    spec: DatasetSpec
    columns: dict[str, tuple[Column, ...]]  # relation -> its columns

    @property
    def name(self) -> str:
        return self.spec.name


def column_category(relation: str, column: str, type_name: str) -> str:
    if column in _IDENTITY or (column == "name" and relation in _NAMED_ENTITIES):
        return "enterprise identity (企业标识)"
    if column in _TIME_NAMES or column.endswith("_at"):
        return "time (时间)"
    if column in ("town", "park"):
        return "location (区域)"
    if column in ("industry_code", "division", "industry_group") or column.endswith("_name"):
        return "industry (行业)"
    if column in ("size_class", "employees", "annual_revenue", "above_designated"):
        return "size (规模)"
    if type_name.startswith(_NUMERIC):
        return "measure (指标)"
    return "attribute (属性)"


def _columns(conn: psycopg.Connection) -> dict[str, list[tuple[str, str, bool]]]:
    rows = conn.execute(
        """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0
             AND NOT a.attisdropped ORDER BY c.relname, a.attnum"""
    ).fetchall()
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for relation, name, type_name, nullable in rows:
        out.setdefault(relation, []).append((name, type_name, nullable))
    return out


def _entry(spec: DatasetSpec, columns: dict[str, list[tuple[str, str, bool]]]) -> Entry:
    described: dict[str, tuple[Column, ...]] = {}
    for relation in spec.relations:
        described[relation] = tuple(
            Column(name, type_name, nullable, category := column_category(relation, name, type_name),
                   max(spec.grade, 2 if category.startswith("enterprise identity") else 1))
            for name, type_name, nullable in columns.get(relation, [])
        )
    return Entry(spec, described)


def build(conn: psycopg.Connection) -> list[Entry]:
    """Every dataset: the specified ones, one per plant's samples, and a graded default for any other relation."""
    relations = {r.name: r for r in discover(conn) if not r.is_partition}
    columns = _columns(conn)
    entries: list[Entry] = []
    covered: set[str] = set()
    for spec in SPECS:
        present = tuple(r for r in spec.relations if r in relations)
        if present:
            entries.append(_entry(replace(spec, relations=present), columns))
            covered.update(present)
    plants = conn.execute("SELECT id, enterprise, site FROM plants ORDER BY id").fetchall()
    for plant_id, enterprise, site in plants:
        entries.append(_entry(plant_samples_spec(plant_id, enterprise, site), columns))
    covered.add("samples")
    for name, rel in sorted(relations.items()):
        if name in covered:
            continue
        # A security_invoker view reads its tables under the reader's row-level security: per-plant data.
        per_plant = rel.scope_column is not None or "plant_id" in rel.columns or rel.security_invoker
        entries.append(_entry(default_spec(name, per_plant=per_plant, is_view=rel.kind in ("v", "m")), columns))
    return entries


def find(entries: list[Entry], name: str) -> Entry:
    for entry in entries:
        if entry.name == name:
            return entry
    raise CatalogError(f"no dataset {name!r} in the catalogue (see `datafactory catalog list`)")


def entry_to_dcat(entry: Entry) -> dict[str, Any]:
    spec = entry.spec
    return {
        "@id": DATASET_URI + spec.name,
        "@type": "dcat:Dataset",
        "dct:identifier": spec.name,
        "dct:title": spec.title,
        "dct:description": spec.description,
        "dct:publisher": spec.provider,
        "df:owner": spec.owner,
        "df:collectionMethod": spec.collection,
        "dct:accrualPeriodicity": spec.frequency or "irregular",
        "df:deadline": spec.deadline,
        "df:sharing": spec.sharing,
        "dct:accessRights": GRADE_ACCESS[spec.grade],
        "df:classification": {"category": spec.category, "grade": spec.grade, "gradeLabel": GRADE_LABELS[spec.grade],
                              "guideline": "工业数据分类分级指南（试行）(MIIT, 2020)"},
        "df:plantId": spec.plant_id,
        "dcat:distribution": [
            {
                "@type": "dcat:Distribution",
                "dct:format": spec.format,
                "df:relation": relation,
                "df:accessViews": list(spec.access_views),
                "df:schema": [
                    {"name": c.name, "type": c.type, "nullable": c.nullable, "category": c.category,
                     "grade": c.grade}
                    for c in cols
                ],
            }
            for relation, cols in entry.columns.items()
        ],
    }


def to_dcat(entries: list[Entry], *, issued: datetime | None = None) -> dict[str, Any]:
    return {
        "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                     "df": "urn:datafactory:terms#"},
        "@id": CATALOG_URI,
        "@type": "dcat:Catalog",
        "dct:title": "datafactory resource catalogue (资源目录)",
        "dct:issued": (issued or datetime.now(UTC)).isoformat(),
        "dcat:dataset": [entry_to_dcat(e) for e in entries],
    }


def validate(document: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as err:
        raise CatalogError(f"catalogue export does not fit {SCHEMA_PATH.name}: {err.message}") from err
