"""The bulletin of a synthetic city's month: opens in headless Chromium with every chart drawn and no console
errors, its PDF carries the Chinese headings and headline numbers, and its numbers equal ones recomputed from
the raw tables. Artefacts (HTML, PDF, screenshot) are kept under test-artifacts/bulletin/."""

from __future__ import annotations

import base64
import dataclasses
import re
import subprocess
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import psycopg
import pypdf
import pytest
from click.testing import CliRunner
from psycopg import sql

from bureau.bulletin.cli import bulletin
from bureau.bulletin.data import BulletinError, Warning_, load
from bureau.bulletin.html import render
from bureau.bulletin.period import PeriodError, parse_period
from bureau.bulletin.text import DASH, pct, wan_tce, yi
from bureau.bulletin.write import BulletinFiles, write_bulletin
from datafactory.render import CHROMIUM_FLAGS
from tests.test_opendata_city import GROUP, MONTH, city_db  # noqa: F401  (module-scoped fixture)

pytestmark = [pytest.mark.integration, GROUP]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "bulletin"
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed "
                                    "(.ci/run installs Debian's chromium and fonts-noto-cjk)")
HEADINGS = ("全市工业经济运行简报", "运行概况", "主要指标", "分行业产值与增速", "镇街", "园区", "增速变动较大的行业",
            "运行预警")


@pytest.fixture(scope="module")
def zh(city_db: str) -> BulletinFiles:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(city_db) as conn:
        return write_bulletin(conn, parse_period("2026-10"), ARTIFACTS, lang="zh", pdf=CHROMIUM.exists())


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.charts: list[str] = []
        self.kpis: dict[str, str] = {}
        self._kpi: str | None = None
        self._in_value = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and a.get("class") == "chart":
            self.charts.append(a.get("src") or "")
        if tag == "div" and a.get("class") == "kpi":
            self._kpi = a.get("data-key")
        if tag == "div" and a.get("class") == "value":
            self._in_value = True

    def handle_data(self, data: str) -> None:
        if self._in_value and self._kpi:
            self.kpis[self._kpi] = self.kpis.get(self._kpi, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._in_value:
            self._in_value = False


def _parse(html: str) -> _Images:
    parser = _Images()
    parser.feed(html)
    return parser


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


@needs_chromium
def test_opens_in_chromium_with_every_chart_and_no_console_error(zh: BulletinFiles, tmp_path: Path) -> None:
    url = zh.html.resolve().as_uri()
    dump = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", url, profile=tmp_path / "p1")
    assert dump.returncode == 0, dump.stderr[-2000:]
    console = [line for line in dump.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    dom = _parse(dump.stdout)
    assert len(dom.charts) >= 5  # output, growth, energy intensity, towns, parks
    for src in dom.charts:
        assert src.startswith("data:image/svg+xml;base64,")
        svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
        assert svg.count("<path") > 20 and "<svg" in svg
    assert not re.search(r"(src|href)=\"https?:|url\(https?:", zh.html.read_text(encoding="utf-8"))
    shot = ARTIFACTS / "bulletin-2026-10-zh.png"
    done = _chromium("--window-size=900,3000", "--hide-scrollbars", f"--screenshot={shot}", url,
                     profile=tmp_path / "p2")
    assert done.returncode == 0 and shot.stat().st_size > 10_000


@needs_chromium
def test_pdf_has_chinese_headings_and_headline_numbers(zh: BulletinFiles) -> None:
    assert zh.pdf is not None
    reader = pypdf.PdfReader(zh.pdf)
    text = "\n".join(page.extract_text() for page in reader.pages)
    for heading in HEADINGS:
        assert heading in text, heading
    city = zh.data.last_city
    for number in (yi(city.output_value), pct(city.yoy_growth), wan_tce(city.energy_tce), str(city.enterprises)):
        assert number in text, number
    assert "\ufffd" not in text and ".notdef" not in text
    # The glyphs are embedded (Chromium writes the page's web font into the PDF), not left to the viewer.
    fonts = [f.get_object() for page in reader.pages
             for f in cast(dict[str, Any], page["/Resources"])["/Font"].get_object().values()]
    assert fonts and all("/Subtype" in f for f in fonts)


def test_numbers_equal_a_recomputation_from_raw_tables(zh: BulletinFiles, city_db: str) -> None:  # noqa: F811
    with psycopg.connect(city_db) as conn:
        row = conn.execute(
            """WITH cur AS (
                   SELECT r.enterprise_id, r.output_value, r.energy_tce, v.division FROM bureau_reports r
                   JOIN bureau_enterprise_versions v ON v.enterprise_id = r.enterprise_id AND r.month >= v.valid_from
                        AND (v.valid_to IS NULL OR r.month < v.valid_to)
                   WHERE r.month = %(m)s),
               prev AS (SELECT enterprise_id, output_value FROM bureau_reports
                        WHERE month = (%(m)s::date - interval '1 year')::date)
               SELECT sum(cur.output_value), sum(cur.energy_tce), count(*),
                      sum(cur.output_value) FILTER (WHERE prev.enterprise_id IS NOT NULL) / sum(prev.output_value) - 1
               FROM cur LEFT JOIN prev USING (enterprise_id)""", {"m": MONTH}).fetchone()
        assert row is not None
        output, energy, count, growth = row
        conn.execute("SET ROLE bureau")
        division = conn.execute(
            "SELECT division FROM bureau_v_industry WHERE level = 'division' AND month = %s AND NOT suppressed"
            " ORDER BY output_value DESC LIMIT 1", (MONTH,)).fetchone()
        city = conn.execute("SELECT suppressed FROM bureau_v_city WHERE month = %s", (MONTH,)).fetchone()
        assert city == (False,)  # this city's total is published (else the page must show "—", not a number)
        towns: dict[str, bool] = dict(conn.execute(
            "SELECT town, suppressed FROM bureau_v_town WHERE month = %s AND town <> '*'", (MONTH,)).fetchall())
    html = zh.html.read_text(encoding="utf-8")
    kpis = _parse(html).kpis
    assert kpis["output"] == yi(output) and kpis["yoy"] == pct(growth)
    assert kpis["energy"] == wan_tce(energy) and kpis["enterprises"] == str(count)
    # The largest published division's row: output recomputed from the raw reports.
    assert division is not None
    with psycopg.connect(city_db) as conn:
        division_output = conn.execute(
            "SELECT sum(r.output_value) FROM bureau_reports r JOIN bureau_enterprise_versions v"
            " ON v.enterprise_id = r.enterprise_id AND r.month >= v.valid_from"
            " AND (v.valid_to IS NULL OR r.month < v.valid_to) WHERE r.month = %s AND v.division = %s",
            (MONTH, division[0])).fetchone()
    assert division_output is not None
    division_row = re.search(rf"<tr><td>{division[0]}</td><td>[^<]*</td><td><span>([^<]*)</span>", html)
    assert division_row is not None and division_row.group(1) == yi(division_output[0])
    # A suppressed town shows "—" in every magnitude column, never a number.
    hidden = [t for t, s in towns.items() if s]
    assert hidden and any(not s for s in towns.values())
    for town in hidden:
        cells = re.search(rf"<tr><td></td><td>{re.escape(town)}</td>(.*?)</tr>", html)
        assert cells is not None, town
        values = re.findall(r"<td>(.*?)</td>", cells.group(1))
        assert all(DASH in v for v in values[:3]), values


def test_english_and_unpublished_period(city_db: str, tmp_path: Path) -> None:  # noqa: F811
    env = {"DATAFACTORY_DATABASE_URL": city_db}
    done = CliRunner().invoke(bulletin, ["--period", "2026-10", "--lang", "en", "--no-pdf", "--out",
                                         str(tmp_path)], env=env)
    assert done.exit_code == 0, done.output
    html = (tmp_path / "bulletin-2026-10-en.html").read_text(encoding="utf-8")
    assert "Headline figures" in html and "October 2026" in html and 'lang="en"' in html
    # Q4 with only October published: details for October, labelled so, but no quarter total (never a partial
    # sum) and no growth chart (same-scope growth does not add over months).
    quarter = CliRunner().invoke(bulletin, ["--period", "2026-Q4", "--no-pdf", "--out", str(tmp_path)], env=env)
    assert quarter.exit_code == 0, quarter.output
    page = (tmp_path / "bulletin-2026-Q4-zh.html").read_text(encoding="utf-8")
    kpis = _parse(page).kpis
    assert kpis["output"] == DASH and kpis["enterprises"].isdigit() and "2026年第4季度" in page
    assert len(_parse(page).charts) >= 4 and "<h2>镇街（仅2026年10月合计）</h2>" in page
    missing = CliRunner().invoke(bulletin, ["--period", "2026-Q2", "--no-pdf", "--out", str(tmp_path)], env=env)
    assert missing.exit_code != 0 and "nothing is published" in missing.output


def test_periods() -> None:
    quarter = parse_period("2026-q3")
    assert quarter.label == "2026-Q3" and [m.month for m in quarter.months] == [7, 8, 9]
    assert quarter.end.isoformat() == "2026-10-01" and quarter.title("zh") == "2026年第3季度"
    assert parse_period("2026-10").title("en") == "October 2026"
    year = parse_period("2026")
    assert year.label == "2026" and len(year.months) == 12 and year.end.isoformat() == "2027-01-01"
    assert year.title("zh") == "2026年全年" and year.is_multi_month and not year.is_quarter
    for bad in ("2026-13", "2026-Q5", "26-10", "2026/10"):
        with pytest.raises(PeriodError):
            parse_period(bad)


def test_login_outside_the_bureau_role_is_refused(city_db: str) -> None:  # noqa: F811
    role = f"df_test_nobureau_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(city_db, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with psycopg.connect(city_db, user=role) as conn, pytest.raises(BulletinError, match="member of the"):
            load(conn, parse_period("2026-10"))
    finally:
        with psycopg.connect(city_db, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_early_warnings_are_localised(zh: BulletinFiles) -> None:
    # This city raises no warning in October 2026, so the page is rendered again with two planted ones (one
    # per scope kind and measure) on its real data.
    data = dataclasses.replace(zh.data, warnings=[
        Warning_(MONTH, "division", "39", "output_value", 52_000.0, 61_000.0, -0.148),
        Warning_(MONTH, "town", zh.data.towns[0].key, "electricity_kwh", 3.1e7, 3.6e7, -0.139),
    ])
    html = render(data, "zh")
    section = re.search(r'<section id="warnings">(.*?)</section>', html)
    assert section is not None
    table = section.group(1)
    for raw in ("division", "town", "output_value", "electricity_kwh"):
        assert raw not in table, raw
    assert re.search(r"<tr><td>行业</td><td>39 计算机、通信和其他电子设备制造业</td><td>产值</td><td>亿元</td>"
                     r"<td>5\.20</td><td>6\.10</td><td><span class=\"neg\">-14\.8%</span></td></tr>", table)
    assert re.search(rf"<tr><td>镇街</td><td>{re.escape(zh.data.towns[0].key)}</td><td>用电量</td><td>亿千瓦时</td>"
                     r"<td>0\.31</td><td>0\.36</td>", table)
    assert "<thead>" in table and "（北京时间）" in html and "UTC" not in html
