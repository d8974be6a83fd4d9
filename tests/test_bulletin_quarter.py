"""Quarterly bulletins that add up: a synthetic city with April and July–September published. The Q3 page's
output, energy and electricity are the sums of the three months' raw reports (recomputed here from the report
rows, not from the bureau's views), its ratio comes from the sums, and so do its detail tables (town by town,
labelled as the quarter's sums); the Q2 page (only April published) says so in the HTML and in the printed
PDF; the trend chart breaks at unpublished months and spaces months by time; times are Beijing time and PDF
pages are numbered."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pypdf
import pytest
from psycopg import sql

from bureau.bulletin import charts
from bureau.bulletin.data import load
from bureau.bulletin.html import render
from bureau.bulletin.period import parse_period
from bureau.bulletin.text import DASH, intensity, wan_tce, yi, yi_kwh
from bureau.bulletin.write import write_bulletin
from bureau.statistics.publish import publish_month
from datafactory.db.connect import with_database
from simulator.city import simulate
from tests.conftest import PG_SERVER, _admin
from tests.test_bulletin import ARTIFACTS, CHROMIUM, _parse, needs_chromium

pytestmark = pytest.mark.integration
PUBLISHED = (date(2026, 4, 1), date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1))


@pytest.fixture(scope="module")
def quarter_db(template_db: str) -> Iterator[str]:
    name = f"dft_quarter_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                         sql.Identifier(template_db)))
    url = with_database(PG_SERVER, name)
    try:
        with psycopg.connect(url) as conn:
            simulate(conn, enterprises=200, towns=8, months=16, seed=5, end=date(2026, 9, 1))
            for month in PUBLISHED:
                publish_month(conn, month)
        yield url
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _raw_sums(url: str, first: date, last: date) -> tuple[float, float, float]:
    """Output, energy and electricity of every report in [first, last] whose enterprise is registered that
    month, straight from the report rows (electricity metered by the platform replaces the reported figure
    for connected enterprises, as the bureau's rules say)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT sum(r.output_value), sum(r.energy_tce), sum(COALESCE(p.electricity_kwh, r.electricity_kwh))
               FROM bureau_reports r
               JOIN bureau_enterprise_versions v ON v.enterprise_id = r.enterprise_id AND r.month >= v.valid_from
                    AND (v.valid_to IS NULL OR r.month < v.valid_to)
               LEFT JOIN bureau_platform_energy p ON p.enterprise_id = r.enterprise_id AND p.month = r.month
               WHERE r.month BETWEEN %s AND %s""", (first, last)).fetchone()
    assert row is not None and row[0] is not None
    return float(row[0]), float(row[1]), float(row[2])


def _raw_by_town(url: str, first: date, last: date) -> dict[str, tuple[float, float, float]]:
    """Like ``_raw_sums``, per town (the town of the enterprise's registry version in the report's month)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT v.town, sum(r.output_value), sum(r.energy_tce),
                      sum(COALESCE(p.electricity_kwh, r.electricity_kwh))
               FROM bureau_reports r
               JOIN bureau_enterprise_versions v ON v.enterprise_id = r.enterprise_id AND r.month >= v.valid_from
                    AND (v.valid_to IS NULL OR r.month < v.valid_to)
               LEFT JOIN bureau_platform_energy p ON p.enterprise_id = r.enterprise_id AND p.month = r.month
               WHERE r.month BETWEEN %s AND %s GROUP BY v.town""", (first, last)).fetchall()
    return {str(r[0]): (float(r[1]), float(r[2]), float(r[3])) for r in rows}


def test_quarter_detail_tables_are_the_quarters_sums(quarter_db: str) -> None:
    with psycopg.connect(quarter_db) as conn:
        data = load(conn, parse_period("2026-Q3"))
        september = load(conn, parse_period("2026-09"))
    quarter = _raw_by_town(quarter_db, date(2026, 7, 1), date(2026, 9, 1))
    published = [c for c in data.towns if c.output_value is not None]
    assert published, "no town published in all three months: the test would prove nothing"
    for c in published:
        output, energy, electricity = quarter[c.key]
        assert c.output_value == pytest.approx(output, rel=1e-9), c.key
        assert c.energy_tce == pytest.approx(energy, rel=1e-9), c.key
        assert c.electricity_kwh == pytest.approx(electricity, rel=1e-9), c.key
        assert c.energy_intensity == pytest.approx(energy / output, rel=1e-9), c.key
    sept = {c.key: c.output_value for c in september.towns}
    assert all((sept[c.key] or 0.0) < (c.output_value or 0.0) for c in published)  # more than one month
    # A town hidden in any of the three months has no quarter figure (never a two-month sum).
    for c in data.towns:
        months = [m for m in september.towns if m.key == c.key]
        if months and months[0].suppressed:
            assert c.output_value is None and c.suppressed
    page = render(data, "zh")
    for heading in ("分行业产值与增速（2026年第3季度合计）", "镇街（2026年第3季度合计）", "园区（2026年第3季度合计）"):
        assert f"<h2>{heading}</h2>" in page, heading
    assert "9月数据" not in page


def test_quarter_sums_every_additive_measure(quarter_db: str) -> None:
    with psycopg.connect(quarter_db) as conn:
        data = load(conn, parse_period("2026-Q3"))
    page = render(data, "zh")
    kpis = _parse(page).kpis
    output, energy, electricity = _raw_sums(quarter_db, date(2026, 7, 1), date(2026, 9, 1))
    _, september_energy, september_kwh = _raw_sums(quarter_db, date(2026, 9, 1), date(2026, 9, 1))
    assert kpis["output"] == yi(output)
    assert kpis["energy"] == wan_tce(energy) and kpis["energy"] != wan_tce(september_energy)
    assert kpis["electricity"] == yi_kwh(electricity) and kpis["electricity"] != yi_kwh(september_kwh)
    assert kpis["intensity"] == intensity(energy / output)  # the ratio of the sums
    assert "id=\"partial\"" not in page
    assert "为2026年第3季度各月合计" in page


def test_partial_quarter_says_so_in_html_and_pdf(quarter_db: str) -> None:
    with psycopg.connect(quarter_db) as conn:
        files = write_bulletin(conn, parse_period("2026-Q2"), ARTIFACTS, lang="zh", pdf=CHROMIUM.exists())
        english = render(load(conn, parse_period("2026-Q2")), "en")
    page = files.html.read_text(encoding="utf-8")
    notice = re.search(r'<p class="notice" id="partial">([^<]*)</p>', page)
    assert notice is not None
    assert "仅发布了2026年4月数据（3个月中的1个月）" in notice.group(1)
    assert "2026年5月、2026年6月尚未发布" in notice.group(1) and "各表为2026年4月合计" in notice.group(1)
    assert "<h2>镇街（仅2026年4月合计）</h2>" in page
    kpis = _parse(page).kpis
    assert kpis["output"] == kpis["energy"] == kpis["electricity"] == DASH  # never a one-month "quarter total"
    assert "only April 2026 of Q2 2026 is published (1 of 3 months; May 2026, June 2026 not yet)" in english
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed: the PDF half of this test needs it")
    assert files.pdf is not None
    pages = pypdf.PdfReader(files.pdf).pages
    text = re.sub(r"\s+", "", "".join(p.extract_text() for p in pages))
    assert "仅发布了2026年4月数据（3个月中的1个月）" in text
    assert "2026年5月、2026年6月尚未发布" in text
    # Page numbers printed by the @page margin box: every page carries "第 i 页 / 共 n 页".
    for i in range(1, len(pages) + 1):
        assert f"第{i}页/共{len(pages)}页" in text, i


@needs_chromium
def test_table_headers_repeat_on_every_printed_page(quarter_db: str, tmp_path: Path) -> None:
    with psycopg.connect(quarter_db) as conn:
        files = write_bulletin(conn, parse_period("2026-Q3"), tmp_path, lang="zh")
    assert files.pdf is not None
    reader = pypdf.PdfReader(files.pdf)
    assert len(reader.pages) >= 3
    header = "行业 工业总产值（亿元） 同口径同比增速"
    row = re.compile(r"^\d{2} \S+ (—|\d)", re.MULTILINE)  # a row of the division table: code, name, output
    texts = [p.extract_text() for p in reader.pages]
    spanned = [t for t in texts if row.search(t)]
    assert len(spanned) >= 2  # the table runs over a page break, so there is a header to repeat
    assert all(header in t for t in spanned)


def test_trend_breaks_at_gaps_and_spaces_months_by_time(quarter_db: str) -> None:
    with psycopg.connect(quarter_db) as conn:
        data = load(conn, parse_period("2026-Q3"))
    months, values = data.trend_series()
    assert months[0] == date(2025, 10, 1) and months[-1] == date(2026, 9, 1) and len(months) == 12
    assert [m for m, v in zip(months, values, strict=True) if v is not None] == list(PUBLISHED)
    svg = charts.trend_chart("t", [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)],
                             [10.0, 12.0, None, 11.0], str).decode()
    line = next(d for d, style in re.findall(r'<path d="([^"]+)"[^>]*style="([^"]*)"', svg)
                if "stroke: #2b6cb0" in style and "fill: none" in style and "L " in d)
    points = [tuple(map(float, xy)) for xy in re.findall(r"[ML] ([\d.]+) ([\d.]+)", line)]
    assert line.count("M ") == 2 and len(points) == 3  # two pieces: no straight line across March
    jan, feb, apr = (p[0] for p in points)
    assert (apr - feb) / (feb - jan) == pytest.approx(59 / 31, rel=0.01)  # by days, not by index


def test_generated_time_is_beijing_time(quarter_db: str) -> None:
    with psycopg.connect(quarter_db) as conn:
        data = load(conn, parse_period("2026-09"))
    page = render(data, "zh", generated=datetime(2026, 10, 5, 20, 30, tzinfo=UTC))
    assert "生成时间：2026-10-06 04:30（北京时间）" in page and "UTC" not in page


def test_annual_bulletin_says_which_months_are_missing(quarter_db: str) -> None:
    with psycopg.connect(quarter_db) as conn:
        data = load(conn, parse_period("2026"))
    page = render(data, "zh")
    assert "2026年全年" in page and len(data.period.months) == 12
    notice = re.search(r'<p class="notice" id="partial">([^<]*)</p>', page)
    assert notice is not None
    assert "仅发布了2026年4月、2026年7月、2026年8月、2026年9月数据（12个月中的4个月）" in notice.group(1)
    assert "2026年1月、2026年2月、2026年3月、2026年5月" in notice.group(1)
    kpis = _parse(page).kpis
    assert kpis["output"] == kpis["energy"] == kpis["electricity"] == DASH  # no four-month "annual total"
    assert "分行业产值与增速（仅2026年4月、2026年7月、2026年8月、2026年9月合计）" in page
