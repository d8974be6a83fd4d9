"""Statistics from the registry and reports: attributes as of the month, same-scope year-on-year growth."""

from __future__ import annotations

from datetime import date

import pytest

from bureau.statistics import registry
from bureau.statistics.facts import enterprise_frame
from bureau.statistics.reports_import import ReportRow, write_reports
from bureau.statistics.stats import summarize
from datafactory.db.connect import connect
from tests.test_bureau_import import record

pytestmark = pytest.mark.integration

NOW, YEAR_AGO = date(2026, 3, 1), date(2025, 3, 1)


def report(eid: int, month: date, output: float, kwh: float = 1000.0) -> ReportRow:
    return ReportRow(eid, month, output, output * 0.95, output * 0.97, 10, output / 100, kwh)


def test_same_scope_growth_with_enterprises_entering_and_leaving(db_url: str) -> None:
    with connect(db_url) as conn:
        a = registry.upsert(conn, record(1, "3484"), date(2025, 1, 1))  # in division 34 throughout
        b = registry.upsert(conn, record(2, "3484"), date(2026, 1, 1))  # new: no report a year ago
        c = registry.upsert(conn, record(3, "3525"), date(2025, 1, 1))  # moves 35 → 34 in 2026
        registry.upsert(conn, record(3, "3484"), date(2026, 1, 1))
        d = registry.upsert(conn, record(4, "3484"), date(2025, 1, 1))  # moves 34 → 35 in 2026
        registry.upsert(conn, record(4, "3525"), date(2026, 1, 1))
        e = registry.upsert(conn, record(5, "3484"), date(2025, 1, 1))  # closed at the end of 2025
        registry.deregister(conn, record(5).credit_code, date(2026, 1, 1))
        write_reports(conn, [
            report(a, NOW, 100, 2000), report(a, YEAR_AGO, 80, 1600),
            report(b, NOW, 50),
            report(c, NOW, 30, 500), report(c, YEAR_AGO, 20, 400),
            report(d, NOW, 40), report(d, YEAR_AGO, 60),
            report(e, YEAR_AGO, 70),
            report(a, date(2026, 1, 1), 90), report(a, date(2026, 2, 1), 60),
            report(a, date(2025, 1, 1), 70), report(a, date(2025, 2, 1), 50),
        ], "test")
        conn.commit()
        facts = enterprise_frame(conn, NOW)
    by_div = summarize(facts, by=["division"]).set_index("division")
    # Division 34 now: A, B and C (by their attributes in March 2026); E is gone, D has moved to 35.
    assert by_div.loc["34", "enterprises"] == 3
    assert by_div.loc["34", "output_value"] == pytest.approx(180.0)
    # Same scope: only A and C reported a year earlier → (100 + 30) / (80 + 20) − 1, by hand.
    assert by_div.loc["34", "yoy_growth"] == pytest.approx(0.30)
    assert by_div.loc["34", "electricity_index"] == pytest.approx(100 * (2000 + 500) / (1600 + 400))
    assert by_div.loc["35", "yoy_growth"] == pytest.approx(40 / 60 - 1)
    # Year to date (Jan–Mar): A 90+60+100 against 70+50+80; C only March both years; B has no prior year.
    assert by_div.loc["34", "output_ytd"] == pytest.approx(250 + 50 + 30)
    assert by_div.loc["34", "ytd_growth"] == pytest.approx((250 + 30) / (200 + 20) - 1)
    assert by_div.loc["34", "energy_intensity"] == pytest.approx(1.8 / 180)
    only_34 = summarize(facts, filters={"division": "34", "town": ["长安镇"]})
    assert only_34["enterprises"].iloc[0] == 3 and only_34["yoy_growth"].iloc[0] == pytest.approx(0.30)
    with pytest.raises(ValueError, match="unknown dimension"):
        summarize(facts, by=["colour"])


# The city's real plant is whatever plant config it is given: the demo plant's, or any other enterprise.
@pytest.mark.parametrize("key", ["demo-precision", "acme-east"])
def test_small_city_is_deterministic_and_includes_the_real_enterprise(db_url: str, tmp_path, key: str) -> None:
    from simulator.city import simulate
    from tests.test_bureau_import import code

    demo = tmp_path / "plant.yaml"
    demo.write_text(
        f"enterprise:\n  id: {key}\n  name: 东莞市示例精密制造有限公司\n"
        f"  credit_code: '{code(42)}'\n  industry_code: C3484\n  town: 松山湖\n"
        "  industrial_park: 松山湖高新技术产业开发区\n"
        "  size_class: small\n  ownership: private\nsite:\n  id: dongguan-1\n",
        encoding="utf-8",
    )
    sums = []
    for _ in range(2):
        with connect(db_url) as conn:
            conn.execute("TRUNCATE bureau_enterprises, plants CASCADE")
            simulate(conn, enterprises=150, towns=30, months=24, seed=7, plant_config=demo)
            total = conn.execute("SELECT round(sum(output_value)::numeric, 2) FROM bureau_reports").fetchone()
            linked = conn.execute(
                "SELECT e.key, p.enterprise, p.site, v.industry_code, v.town, v.park FROM bureau_enterprises e"
                " JOIN bureau_enterprise_versions v ON v.enterprise_id = e.id JOIN plants p ON p.id = v.plant_id"
                " WHERE e.credit_code = %s", (code(42),)).fetchall()
            simulated_kwh = conn.execute(
                "SELECT count(*) FROM bureau_platform_energy pe JOIN bureau_enterprises e ON e.id = pe.enterprise_id"
                " WHERE e.key = %s", (key,)).fetchone()
            conn.commit()
        sums.append(total)
        assert linked == [
            (key, key, "dongguan-1", "3484", "松山湖", "松山湖高新技术产业开发区")
        ]
        assert simulated_kwh == (0,)  # its electricity comes from the platform's own meters
    assert sums[0] == sums[1] and sums[0] is not None
