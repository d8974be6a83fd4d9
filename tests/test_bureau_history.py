"""The cross-release attack of ``bureau.history``: a closure between two published months gives the closed
enterprise's year-to-date exactly when both releases show the cell; hiding the year-to-date cells of the later
month defeats it. Then a synthetic city published month after month with the cross-release protection
(``bureau.statistics.releases``) survives the attack, while the single-month publication of the same months
exposes departures; the commands audit and refuse."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import date

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from bureau.cli import bureau
from bureau.statistics.facts import DIMENSIONS, enterprise_frame
from bureau.statistics.history import Snapshot, audit_year, difference_cells, released_snapshot
from bureau.statistics.publish import build, publish_month
from bureau.statistics.releases import ReleaseCache, keys_of
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


def test_audit_stays_exact_at_billion_magnitudes() -> None:
    """Values near 10⁹ (kWh-sized): the LP is scaled per component, so the closure is still exact and the
    protected variant still protected, not lost in HiGHS's absolute tolerances."""
    def scaled(snaps: list[Snapshot]) -> list[Snapshot]:
        return [dataclasses.replace(s, out=s.out * 1e9, ytd=s.ytd * 1e9, ent_out={e: v * 1e9 for e, v in
                s.ent_out.items()}, ent_ytd={e: v * 1e9 for e, v in s.ent_ytd.items()}) for s in snaps]

    closed = next(x for x in audit_year(scaled(_two_months(set())), P) if x.kind == "enterprise")
    assert closed.low == pytest.approx(60e9, rel=1e-9) and closed.high == pytest.approx(60e9, rel=1e-9)
    assert not closed.protected
    full = audit_year(scaled(_two_months({CITY, town("A"), town("B")})), P)
    assert full and all(x.protected for x in full)


def test_hiding_the_later_year_to_date_cells_protects_the_closure() -> None:
    # Town A's YTD alone is not enough: the city's difference cell is the same single closure.
    partial = [x for x in audit_year(_two_months({town("A"), town("B")}), P) if not x.protected]
    assert any(x.kind == "enterprise" for x in partial)
    full = audit_year(_two_months({CITY, town("A"), town("B")}), P)
    assert full and all(x.protected for x in full), [x.describe() for x in full if not x.protected]


def _old_publication(s: Snapshot) -> Snapshot:
    """The release as the single-month path published it: the same monthly pattern, YTD hidden only with it."""
    return dataclasses.replace(s, ytd_hidden=s.out_hidden.copy())


@pytest.mark.integration
def test_whole_history_protects_departures_the_old_publication_exposes(template_db: str) -> None:
    """Must-show 1: a 24-month city with closures, openings and size-class changes, published month after month
    with the cross-release protection: the whole-year attack finds nothing exposed; the same attack on the old
    publication (identical monthly pattern, year-to-date hidden only with it) finds departures exposed exactly."""
    name = f"dft_hist_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                         sql.Identifier(template_db)))
    try:
        with psycopg.connect(with_database(PG_SERVER, name)) as conn:
            simulate(conn, enterprises=250, towns=8, months=24, seed=5, end=date(2026, 4, 1))
            months = [date(2026, m, 1) for m in (1, 2, 3, 4)]
            results = [publish_month(conn, month) for month in months]
            snaps = [released_snapshot(conn, m, P) for m in months]
        closures = openings = class_changes = 0
        for a, b in itertools.pairwise(snaps):
            closures += len(set(a.members) - set(b.members))
            openings += len(set(b.members) - set(a.members))
            class_changes += sum(1 for e in set(a.members) & set(b.members)
                                 if {k[4] for k in a.members[e]} != {k[4] for k in b.members[e]})
        assert closures > 0 and openings > 0 and class_changes > 0, (closures, openings, class_changes)
        assert sum(r.ytd_only for r in results) > 0  # the protection did something beyond the monthly pattern

        new = audit_year(snaps, P)
        assert any(x.kind == "enterprise" for x in new)  # departures are among the audited quantities
        exposed_new = [x.describe() for x in new if not x.protected]
        assert not exposed_new, exposed_new[:5]

        old = [x for x in audit_year([_old_publication(s) for s in snaps], P) if not x.protected]
        print("\n".join(x.describe() for x in old[:5]))
        assert any(x.kind == "enterprise" for x in old)
        assert any(x.high - x.low < 1e-6 * max(1.0, x.value) for x in old)  # exact disclosure

        # The commands: `bureau audit` passes the publication; after March is rewritten the old way (its true
        # year-to-date wherever the cell is published) it reports exposures, and `bureau publish` refuses April
        # in one line, leaving April's earlier publication in place.
        env = {"DATAFACTORY_DATABASE_URL": with_database(PG_SERVER, name)}
        ok = CliRunner().invoke(bureau, ["audit"], env=env)
        assert ok.exit_code == 0 and " 0 exposed" in ok.output, ok.output
        with psycopg.connect(env["DATAFACTORY_DATABASE_URL"]) as conn:
            march = months[2]
            truth = build(enterprise_frame(conn, march), march).cells
            dims = ", ".join(DIMENSIONS)
            with conn.cursor() as cur:
                for key, ytd in zip(keys_of(truth), truth["output_ytd"].tolist(), strict=True):
                    cur.execute(f"UPDATE bureau_published_cells SET output_ytd = %s WHERE month = %s AND"
                                f" suppression IS NULL AND ({dims}) = ({', '.join(['%s'] * 7)})", (ytd, march, *key))
            conn.commit()
            before = conn.execute("SELECT published_at FROM bureau_publish_runs WHERE month = %s",
                                  (months[3],)).fetchone()
        bad = CliRunner().invoke(bureau, ["audit"], env=env)
        assert bad.exit_code == 1 and "EXPOSED" in bad.output and "enterprise #" in bad.output, bad.output
        refused = CliRunner().invoke(bureau, ["publish", "--month", "2026-04"], env=env)
        assert refused.exit_code == 1, refused.output
        lines = [line for line in refused.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: refused: 2026-0"), refused.output
        assert "nothing was published" in lines[0]
        with psycopg.connect(env["DATAFACTORY_DATABASE_URL"]) as conn:
            after = conn.execute("SELECT published_at FROM bureau_publish_runs WHERE month = %s",
                                 (months[3],)).fetchone()
        assert after == before
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.integration
def test_release_cache_gives_the_same_releases_and_drops_a_republished_month(template_db: str) -> None:
    """Publishing months in order with a ``ReleaseCache`` (the benchmark's and a session's path) stores the same
    releases as without it, and a republished month is read again instead of served from the cache."""
    name = f"dft_cache_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                         sql.Identifier(template_db)))
    try:
        with psycopg.connect(with_database(PG_SERVER, name)) as conn:
            simulate(conn, enterprises=250, towns=8, months=15, seed=5, end=date(2026, 3, 1))
            months = [date(2026, m, 1) for m in (1, 2, 3)]
            cache = ReleaseCache()
            cached = [publish_month(conn, m, cache=cache) for m in months]
            fresh = publish_month(conn, months[-1])  # the same month again, every earlier release re-read
            assert (fresh.primary, fresh.secondary, fresh.ytd_only) == \
                (cached[-1].primary, cached[-1].secondary, cached[-1].ytd_only)
            assert cached[-1].ytd_only > 0 or cached[1].ytd_only > 0  # the cached releases took part
            first = cache.get(conn, months[:2], P)
            again = cache.get(conn, months[:2], P)
            assert all(a is b for a, b in zip(first, again, strict=True))  # served from the cache
            publish_month(conn, months[1], cache=cache)
            jan, feb = cache.get(conn, months[:2], P)
            assert jan is first[0] and feb is not first[1]  # the republished month was read again
            truth = released_snapshot(conn, months[1], P)
            assert feb.keys == truth.keys
            assert np.array_equal(feb.ytd_hidden, truth.ytd_hidden)
            assert np.array_equal(feb.out_hidden, truth.out_hidden)
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
