"""A synthetic city of industrial enterprises with monthly reports, deterministic for a seed.

Enterprises are spread over towns (镇街) and industrial parks, manufacturing divisions 13–43 with a
Dongguan-like mix (electronics and electrical machinery dominate), log-normal sizes plus a few dominant firms,
a realistic ownership mix, births, closures and attribute changes (registry intervals). Output follows division
trends, a mild calendar season and the moving Spring Festival shutdown; electricity and energy follow output.
Planted events, recorded in ``bureau_sim_truth``: one division's output falls 15 % from a known month, and one
park grows 1.5 % a month from a known month. Some enterprises are connected plants (platform electricity).
Everything is written with COPY.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import orjson
import psycopg

from datafactory.codes.calendar import add_months, holiday_share, month_range
from datafactory.codes.credit_code import ALPHABET, check_character
from datafactory.codes.gbt4754 import MANUFACTURING_DIVISIONS, all_codes
from datafactory.codes.sizing import above_designated, size_class

log = logging.getLogger(__name__)

TOWNS = (
    "莞城街道", "南城街道", "东城街道", "万江街道", "石碣镇", "石龙镇", "茶山镇", "石排镇", "企石镇", "横沥镇",
    "桥头镇", "谢岗镇", "东坑镇", "常平镇", "寮步镇", "樟木头镇", "大朗镇", "黄江镇", "清溪镇", "塘厦镇",
    "凤岗镇", "大岭山镇", "长安镇", "虎门镇", "厚街镇", "沙田镇", "道滘镇", "洪梅镇", "麻涌镇", "望牛墩镇",
    "中堂镇", "高埗镇",
)
PARKS = ("松山湖园区", "滨海湾园区", "水乡园区", "东部园区", "银瓶园区", "黄江园区", "长安园区", "虎门园区")
DIVISION_WEIGHT = {"39": 14, "38": 9, "33": 8, "34": 7, "29": 7, "35": 5, "18": 5, "17": 4, "22": 4, "24": 4,
                   "26": 3, "21": 3, "30": 3, "19": 3, "40": 2, "36": 2, "13": 2, "14": 2, "23": 2, "32": 2}
OWNERSHIP_MIX = {"private": 0.55, "limited_liability": 0.14, "hmt_invested": 0.13, "foreign_invested": 0.10,
                 "joint_stock": 0.05, "state_owned": 0.02, "collective": 0.01}
DECLINE_DIVISION = "38"
DECLINE_FRACTION = 0.15
PARK_MONTHLY_GROWTH = 0.015
DEFAULT_END = date(2026, 10, 1)
SF_DEPTH = 0.6  # output lost per unit of Spring Festival share of the month
KGCE_PER_KWH = 0.1229  # equivalent-value coefficient of electricity, GB/T 2589-2020


@dataclass(frozen=True)
class CityTruth:
    first_month: date
    last_month: date
    enterprises: int
    decline_division: str
    decline_month: date
    growth_park: str
    growth_month: date


def _credit_codes(rng: np.random.Generator, n: int) -> list[str]:
    codes: set[str] = set()
    out: list[str] = []
    letters = np.array(list(ALPHABET))
    while len(out) < n:
        body = "91441900" + "".join(rng.choice(letters, 9))
        code = body + check_character(body)
        if code not in codes:
            codes.add(code)
            out.append(code)
    return out


DEMO_CONFIG = Path(__file__).resolve().parent.parent / "edge_configs" / "demo-plant.yaml"


def _real_enterprise(path: Path | None) -> tuple[dict[str, str], str] | None:
    """The enterprise and site id of a real (metered) plant's config, which becomes enterprise 0 of the city.

    Any plant config works; its ``enterprise.id`` is the registry key that links the city's registry to the
    plant's own data. None when there is no such file or it names no enterprise.
    """
    if path is None or not path.exists():
        return None
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    ent = data.get("enterprise") or {}
    site = (data.get("site") or {}).get("id", "main")
    return (ent, str(site)) if ent.get("id") else None


def simulate(
    conn: psycopg.Connection, *, enterprises: int = 2000, towns: int = 30, months: int = 36, seed: int = 1,
    end: date = DEFAULT_END, plant_config: Path | None = DEMO_CONFIG,
) -> CityTruth:
    """Write a synthetic city into an empty bureau registry; returns the planted ground truth.

    ``plant_config`` (default: the demo plant's) is a real plant metered by the platform: it becomes enterprise 0
    with its own attributes, and the city writes no simulated platform electricity for it. None: no real plant.
    """
    rng = np.random.default_rng(seed)
    n, m = enterprises, months
    first = add_months(end, -(m - 1))
    month_list = month_range(first, m)
    town_names = [*TOWNS[:towns], *(f"第{i + 1}镇" for i in range(len(TOWNS), towns))]
    park_towns = rng.choice(len(town_names), len(PARKS), replace=False)

    divisions = list(MANUFACTURING_DIVISIONS)
    weights = np.array([DIVISION_WEIGHT.get(d, 1) for d in divisions], float)
    div = rng.choice(divisions, n, p=weights / weights.sum())
    classes_of: dict[str, list[str]] = {}
    for c in all_codes():
        if c.level == "class":
            classes_of.setdefault(c.code[:2], []).append(c.code)
    industry = np.array([classes_of[d][rng.integers(len(classes_of[d]))] for d in div])
    in_park = rng.random(n) < 0.3
    park_idx = rng.integers(len(PARKS), size=n)
    town_idx = np.where(in_park, park_towns[park_idx], rng.integers(len(town_names), size=n))
    park = np.where(in_park, np.array(PARKS)[park_idx], "").astype(object)
    owners = list(OWNERSHIP_MIX)
    ownership = rng.choice(owners, n, p=np.array(list(OWNERSHIP_MIX.values()))).astype(object)

    base = rng.lognormal(np.log(250.0), 1.3, n)  # monthly output, 万元
    giants = rng.choice(n, max(3, n // 250), replace=False)
    base[giants] *= rng.uniform(20, 60, len(giants))
    productivity = rng.lognormal(np.log(60.0), 0.4, n)  # 万元 of annual output per employee
    kwh_per_10k = rng.lognormal(np.log(600.0), 0.5, n)
    fuel_share = rng.uniform(0.05, 0.6, n)

    start = np.where(rng.random(n) < 0.12, rng.integers(1, m, n), 0)  # births
    stop = np.where(rng.random(n) < 0.08, rng.integers(2, m + 1, n), m)  # closures (exclusive month index)
    stop = np.maximum(stop, start + 1)
    change_at = np.where(rng.random(n) < 0.15, rng.integers(1, m, n), -1)
    change_factor = rng.choice([0.5, 1.8], n)

    t = np.arange(m)
    div_trend = {d: rng.normal(0.05, 0.03) for d in divisions}
    trend = np.array([div_trend[d] for d in div])[:, None] * t[None, :] / 12 + rng.normal(0, 0.04, n)[:, None] * t / 12
    season = np.array([1 + 0.06 * np.cos((mo.month - 12) / 12 * 2 * np.pi) for mo in month_list])
    festival = np.array([1 - SF_DEPTH * holiday_share(mo) for mo in month_list])
    level = base[:, None] * np.exp(trend) * season[None, :] * festival[None, :]
    level *= np.where((t[None, :] >= change_at[:, None]) & (change_at[:, None] >= 0), change_factor[:, None], 1.0)
    decline_month_idx = m - 8
    growth_month_idx = max(1, m // 3)
    growth_park = PARKS[0]
    level[div == DECLINE_DIVISION, decline_month_idx:] *= 1 - DECLINE_FRACTION
    grow = np.clip(t - growth_month_idx + 1, 0, None)
    level[park == growth_park] *= (1 + PARK_MONTHLY_GROWTH) ** grow[None, :]
    output = level * rng.lognormal(0, 0.06, (n, m))
    active = (t[None, :] >= start[:, None]) & (t[None, :] < stop[:, None])

    codes = _credit_codes(rng, n)
    real = _real_enterprise(plant_config)
    real_key = real[0]["id"] if real is not None else None
    keys: list[str | None] = [None] * n
    connected = rng.random(n) < 0.05
    names = [f"东莞市{town_names[town_idx[i]][:2]}{industry[i]}制造{i:05d}有限公司" for i in range(n)]
    sites = ["main"] * n
    if real is not None:
        ent, sites[0] = real
        codes[0], names[0], keys[0], connected[0] = ent["credit_code"], ent["name"], real_key, True
        industry[0], div[0] = ent["industry_code"].lstrip("C")[:4], ent["industry_code"].lstrip("C")[:2]
        # The real enterprise keeps the attributes of its config (its town may be one the city list lacks).
        if ent.get("town") and ent["town"] not in town_names:
            town_names.append(ent["town"])
        if ent.get("town"):
            town_idx[0] = town_names.index(ent["town"])
        park[0] = ent.get("industrial_park", "") or ""
        ownership[0] = ent.get("ownership", ownership[0])
        start[0], stop[0] = 0, m
        active[0] = True

    with conn.transaction():
        plant_ids: dict[int, int] = {}
        for ci in np.flatnonzero(connected).tolist():
            key = keys[ci] or f"city-{ci:05d}"
            keys[ci] = key
            row = conn.execute(
                "INSERT INTO plants (enterprise, site) VALUES (%s, %s) ON CONFLICT (enterprise, site)"
                " DO UPDATE SET name = plants.name RETURNING id", (key, sites[ci])
            ).fetchone()
            assert row is not None
            plant_ids[ci] = row[0]
        with conn.cursor().copy("COPY bureau_enterprises (credit_code, key) FROM STDIN") as copy:
            for k in range(n):
                copy.write_row((codes[k], keys[k]))
        ids: dict[str, int] = dict(conn.execute("SELECT credit_code, id FROM bureau_enterprises").fetchall())
        eid = np.array([ids[c] for c in codes])
        annual = base * 12 * rng.uniform(0.85, 1.05, n)
        with conn.cursor().copy(
            "COPY bureau_enterprise_versions (enterprise_id, valid_from, valid_to, name, industry_code, division,"
            " industry_group, town, park, ownership, employees, annual_revenue, size_class, above_designated,"
            " plant_id) FROM STDIN"
        ) as copy:
            for i in range(n):
                spans = [(start[i], stop[i], 1.0)]
                if start[i] < change_at[i] < stop[i]:
                    spans = [(start[i], change_at[i], 1.0), (change_at[i], stop[i], change_factor[i])]
                for a, b, f in spans:
                    rev = float(annual[i] * f)
                    emp = max(1, int(rev / productivity[i]))
                    copy.write_row((
                        int(eid[i]), month_list[a], None if b >= m else month_list[b], names[i], industry[i],
                        industry[i][:2], industry[i][:3], town_names[town_idx[i]], park[i], ownership[i], emp,
                        round(rev, 1), size_class(emp, rev), above_designated(rev), plant_ids.get(int(i)),
                    ))
        employees = np.maximum(1, (base * 12 / productivity)[:, None] * (festival[None, :] ** 0.3)).astype(int)
        sales = output * rng.uniform(0.93, 1.0, (n, m))
        revenue = sales * rng.uniform(0.98, 1.05, (n, m))
        kwh = output * kwh_per_10k[:, None] * rng.lognormal(0, 0.03, (n, m))
        tce = kwh * KGCE_PER_KWH / 1000 * (1 + fuel_share[:, None])
        rows = np.argwhere(active)
        with conn.cursor().copy(
            "COPY bureau_reports (enterprise_id, month, revision, output_value, sales_value, revenue, employment,"
            " energy_tce, electricity_kwh, source) FROM STDIN"
        ) as copy:
            for i, j in rows:
                copy.write_row((int(eid[i]), month_list[j], 1, round(float(output[i, j]), 2),
                                round(float(sales[i, j]), 2), round(float(revenue[i, j]), 2),
                                int(employees[i, j]), round(float(tce[i, j]), 3), round(float(kwh[i, j]), 1),
                                "city-simulator"))
        conn.execute(
            "INSERT INTO bureau_report_revisions (enterprise_id, month, revision, output_value, sales_value, revenue,"
            " employment, energy_tce, electricity_kwh, source) SELECT enterprise_id, month, revision, output_value,"
            " sales_value, revenue, employment, energy_tce, electricity_kwh, source FROM bureau_reports"
        )
        with conn.cursor().copy(
            "COPY bureau_platform_energy (enterprise_id, month, electricity_kwh, operating, source) FROM STDIN"
        ) as copy:
            for i, j in rows:
                if connected[i] and keys[i] != real_key:  # the real plant is metered by the platform itself
                    metered = float(kwh[i, j]) * float(rng.uniform(0.99, 1.01))
                    copy.write_row((int(eid[i]), month_list[j], round(metered, 1), holiday_share(month_list[j]) < 0.5,
                                    "simulated"))
        truth = CityTruth(first, end, n, DECLINE_DIVISION, month_list[decline_month_idx], growth_park,
                          month_list[growth_month_idx])
        conn.execute(
            "INSERT INTO bureau_sim_truth (kind, scope, month, details) VALUES ('division_decline', %s, %s, %s::jsonb),"
            " ('park_growth', %s, %s, %s::jsonb) ON CONFLICT (kind, scope) DO UPDATE SET month = EXCLUDED.month,"
            " details = EXCLUDED.details",
            (DECLINE_DIVISION, truth.decline_month, orjson.dumps({"fraction": DECLINE_FRACTION, "seed": seed}).decode(),
             growth_park, truth.growth_month, orjson.dumps({"monthly": PARK_MONTHLY_GROWTH, "seed": seed}).decode()),
        )
    log.info("synthetic city: %d enterprises, %d towns, %d months (%s–%s), %d reports", n, towns, m, first, end,
             len(rows))
    return truth
