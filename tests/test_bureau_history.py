"""The cross-release attack of ``bureau.history``: a closure between two published months gives the closed
enterprise's year-to-date exactly when both releases show the cell; hiding the year-to-date cells of the later
month defeats it. Then the same attack on a synthetic city published month after month by the single-month
publication path finds such exposures (departures included)."""

from __future__ import annotations

import itertools
import uuid
from datetime import date

import numpy as np
import psycopg
import pytest
from psycopg import sql

from bureau.statistics.history import Snapshot, audit_year, difference_cells, released_snapshot
from bureau.statistics.publish import publish_month
from bureau.statistics.sdc import Relation, SdcParameters
from datafactory.db.connect import with_database
from simulator.city import simulate
from tests.conftest import PG_SERVER, _admin

P = SdcParameters()
CITY = ("*",) * 7


def town(name: str) -> tuple[str, ...]:
    return ("*", "*", name, "*", "*", "*", "*")


def _snap(month: date, ytd_e: dict[int, float], out_e: dict[int, float], where: dict[int, str],
          ytd_hidden: set[tuple[str, ...]] = frozenset()) -> Snapshot:  # type: ignore[assignment]
    keys = [CITY, town("A"), town("B")]
    out = np.array([sum(out_e[e] for e in where if k == CITY or town(where[e]) == k) for k in keys])
    ytd = np.array([sum(ytd_e[e] for e in where if k == CITY or town(where[e]) == k) for k in keys])
    members = {e: frozenset({CITY, town(t)}) for e, t in where.items()}
    return Snapshot(month, keys, [Relation(0, (1, 2))], out, ytd, np.zeros(3, bool),
                    np.array([k in ytd_hidden for k in keys]), np.zeros(3), np.zeros(3), members,
                    {e: out_e[e] for e in where}, {e: ytd_e[e] for e in where})


def _two_months(hide_feb: set[tuple[str, ...]]) -> list[Snapshot]:
    jan_where = {1: "A", 2: "A", 3: "A", 4: "A", 5: "B", 6: "B", 7: "B"}
    jan_out = {1: 100.0, 2: 80.0, 3: 120.0, 4: 60.0, 5: 90.0, 6: 70.0, 7: 110.0}
    feb_where = {e: t for e, t in jan_where.items() if e != 4}  # enterprise 4 closes after January
    feb_out = {e: v * 1.1 for e, v in jan_out.items() if e != 4}
    feb_ytd = {e: jan_out[e] + feb_out[e] for e in feb_where}
    return [_snap(date(2026, 1, 1), jan_out, jan_out, jan_where),
            _snap(date(2026, 2, 1), feb_ytd, feb_out, feb_where, hide_feb)]


def test_closure_between_two_releases_is_exposed_exactly() -> None:
    snaps = _two_months(set())
    diffs = {d.key: d for d in difference_cells(snaps[0], snaps[1], P)}
    assert diffs[town("A")].leaving == (4,) and diffs[town("A")].need > 0
    exposed = [x for x in audit_year(snaps, P) if not x.protected]
    kinds = {(x.kind, x.key) for x in exposed}
    assert ("enterprise", CITY) in kinds or ("enterprise", town("A")) in kinds
    assert ("difference", town("A")) in kinds
    closed = next(x for x in exposed if x.kind == "enterprise")
    assert closed.enterprise == 4 and closed.low == pytest.approx(60.0) and closed.high == pytest.approx(60.0)
    assert "enterprise #4" in closed.describe()


def test_hiding_the_later_year_to_date_cells_protects_the_closure() -> None:
    # Town A's YTD alone is not enough: the city's difference cell is the same single closure.
    partial = [x for x in audit_year(_two_months({town("A"), town("B")}), P) if not x.protected]
    assert any(x.kind == "enterprise" for x in partial)
    full = audit_year(_two_months({CITY, town("A"), town("B")}), P)
    assert full and all(x.protected for x in full), [x.describe() for x in full if not x.protected]


@pytest.mark.integration
@pytest.mark.slow  # 40–90 s on the shared 2-core box: one LP pair per changer, not yet batched
def test_single_month_publication_leaks_departures_across_releases(template_db: str) -> None:
    """The attack on the old path: three consecutive monthly releases (January–March) of a 24-month city, each
    protected on its own (with the year's earlier suppressions carried), still expose enterprises that left a
    cell."""
    name = f"dft_hist_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                         sql.Identifier(template_db)))
    try:
        with psycopg.connect(with_database(PG_SERVER, name)) as conn:
            simulate(conn, enterprises=250, towns=8, months=24, seed=5, end=date(2026, 3, 1))
            months = [date(2026, m, 1) for m in (1, 2, 3)]
            for month in months:
                publish_month(conn, month)
            snaps = [released_snapshot(conn, m, P) for m in months]
        changed = sum(len(difference_cells(a, b, P)) for a, b in itertools.pairwise(snaps))
        assert changed > 0, "the city must have closures, openings or class changes between the months"
        exposed = [x for x in audit_year(snaps, P) if not x.protected]
        print("\n".join(x.describe() for x in exposed[:5]))
        assert any(x.kind in ("enterprise", "difference") for x in exposed)
        assert any(x.high - x.low < 1e-6 * max(1.0, x.value) for x in exposed)  # exact disclosure
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
