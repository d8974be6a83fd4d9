"""The bulletin as one self-contained HTML page: styles inline, charts as SVG data URIs, the CJK font subset
embedded. Nothing is fetched when the page is opened or printed."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from html import escape

from bureau.bulletin import charts
from bureau.bulletin.cjk_font import CJK_FAMILY
from bureau.bulletin.data import BulletinData, Cell
from bureau.bulletin.render import font_face_css
from bureau.bulletin.text import (
    CITY,
    DASH,
    LABELS,
    cell_row,
    intensity,
    pct,
    summary_sentences,
    wan_tce,
    yi,
    yi_kwh,
)

STYLE = """
@page { size: A4; margin: 14mm 12mm; }
body { font-family: 'BulletinCJK', '%(family)s', sans-serif; color: #1a202c; margin: 0 auto; max-width: 820px;
       padding: 16px; line-height: 1.5; }
h1 { font-size: 24px; margin: 0 0 4px; color: #1a365d; } h2 { font-size: 17px; border-bottom: 2px solid #2b6cb0;
     padding-bottom: 2px; margin-top: 22px; color: #1a365d; break-after: avoid; }
.period { color: #4a5568; margin: 0 0 12px; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; }
.kpi { background: #ebf4ff; border-radius: 6px; padding: 8px 10px; break-inside: avoid; }
.kpi .label { font-size: 12px; color: #4a5568; } .kpi .value { font-size: 22px; font-weight: 700; }
.kpi .unit { font-size: 11px; color: #4a5568; }
table { border-collapse: collapse; width: 100%%; font-size: 12px; margin-top: 6px; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 3px 6px; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
tr { break-inside: avoid; } .neg { color: #c53030; } .pos { color: #2b6cb0; }
.suppressed { color: #718096; }
figure.chart { margin: 8px 0; break-inside: avoid; } figure.chart img { width: 100%%; height: auto; }
footer { margin-top: 24px; font-size: 11px; color: #4a5568; border-top: 1px solid #e2e8f0; padding-top: 6px; }
"""


def _chart(svg: bytes, alt: str) -> str:
    data = base64.b64encode(svg).decode("ascii")
    return (f'<figure class="chart"><img class="chart" alt="{escape(alt)}" '
            f'src="data:image/svg+xml;base64,{data}"></figure>')


def _num(text: str, value: float | None = None) -> str:
    if text == DASH:
        return f'<span class="suppressed">{DASH}</span>'
    css = "" if value is None else (' class="neg"' if value < 0 else ' class="pos"')
    return f"<span{css}>{escape(text)}</span>"


def _kpi(key: str, label: str, value: str, unit: str) -> str:
    return (f'<div class="kpi" data-key="{key}"><div class="label">{escape(label)}</div>'
            f'<div class="value">{_num(value)}</div><div class="unit">{escape(unit)}</div></div>')


def _table(cells: list[Cell], first: str, t: dict[str, str], *, show_key: bool) -> str:
    head = (f"<tr><th>{escape(first)}</th><th></th><th>{escape(t['output'])}（{escape(t['output_unit'])}）</th>"
            f"<th>{escape(t['yoy'])}</th><th>{escape(t['intensity'])}</th><th>{escape(t['enterprises'])}</th></tr>")
    rows = []
    for c in cells:
        output, growth, energy, count = cell_row(c)
        key = escape(c.key) if show_key else ""
        rows.append(f"<tr><td>{key}</td><td>{escape(c.label)}</td><td>{_num(output)}</td>"
                    f"<td>{_num(growth, c.yoy_growth)}</td><td>{_num(energy)}</td><td>{count}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _headline(data: BulletinData, t: dict[str, str]) -> str:
    city = data.last_city
    growth_key, growth = ("ytd", city.ytd_growth) if data.period.is_quarter else ("yoy", city.yoy_growth)
    kpis = [
        _kpi("output", t["output"], yi(data.period_output), t["output_unit"]),
        _kpi(growth_key, t[growth_key], pct(growth), ""),
        _kpi("output_ytd", t["output_ytd"], yi(city.output_ytd), t["output_unit"]),
        _kpi("enterprises", t["enterprises"], str(city.enterprises), t["enterprises_unit"]),
        _kpi("energy", t["energy"], wan_tce(city.energy_tce), t["energy_unit"]),
        _kpi("intensity", t["intensity"], intensity(city.energy_intensity), t["intensity_unit"]),
        _kpi("electricity", t["electricity"], yi_kwh(city.electricity_kwh), t["electricity_unit"]),
        _kpi("operating", t["operating"], pct(city.operating_rate, signed=False),
             t["connected_unit"].format(n=city.connected)),
    ]
    return f'<div class="kpis">{"".join(kpis)}</div>'


def _sectors(data: BulletinData, t: dict[str, str]) -> str:
    published = sorted((c for c in data.divisions if c.output_value is not None),
                       key=lambda c: c.output_value or 0.0, reverse=True)[:12]
    parts = [_chart(charts.bar_chart(f"{t['output']}（{t['output_unit']}）", [c.label for c in published],
                                     [(c.output_value or 0.0) / 1e4 for c in published], lambda v: f"{v:,.2f}"),
                    t["output"])]
    growing = sorted((c for c in data.divisions if c.yoy_growth is not None), key=lambda c: c.yoy_growth or 0.0,
                     reverse=True)
    if growing:
        parts.append(_chart(charts.bar_chart(t["yoy"], [c.label for c in growing],
                                             [c.yoy_growth for c in growing], pct, diverging=True),
                            t["yoy"]))
    parts.append(_table(data.divisions, t["division"], t, show_key=True))
    return "".join(parts)


def _places(cells: list[Cell], heading: str, t: dict[str, str]) -> str:
    if not cells:
        return ""
    chart = charts.bar_chart(f"{heading} · {t['output']}（{t['output_unit']}）", [c.label for c in cells],
                             [None if c.output_value is None else c.output_value / 1e4 for c in cells],
                             lambda v: f"{v:,.2f}")
    return _chart(chart, heading) + _table(cells, heading, t, show_key=False)


def _energy(data: BulletinData, t: dict[str, str]) -> str:
    cells = sorted((c for c in data.divisions if c.energy_intensity is not None),
                   key=lambda c: c.energy_intensity or 0.0, reverse=True)[:12]
    if not cells:
        return ""
    return _chart(charts.bar_chart(f"{t['intensity_chart']}（{t['intensity_unit']}）", [c.label for c in cells],
                                   [c.energy_intensity for c in cells], lambda v: f"{v:.3f}"), t["intensity_chart"])


def _movers(data: BulletinData, t: dict[str, str]) -> str:
    up, down = data.movers()
    items = [f"<li>{escape(t['up'])}：{escape(c.label)} {_num(pct(c.yoy_growth), c.yoy_growth)}</li>" for c in up]
    items += [f"<li>{escape(t['down'])}：{escape(c.label)} {_num(pct(c.yoy_growth), c.yoy_growth)}</li>"
              for c in down]
    return f"<ul>{''.join(items)}</ul>"


def _warnings(data: BulletinData, t: dict[str, str]) -> str:
    if not data.warnings:
        return f"<p>{escape(t['no_warnings'])}</p>"
    rows = "".join(
        f"<tr><td>{escape(w.scope_kind)}</td><td>{escape(w.scope)}</td><td>{escape(t.get(w.measure, w.measure))}"
        f"</td><td>{w.actual:,.0f}</td><td>{w.expected:,.0f}</td><td>{_num(pct(w.shortfall), w.shortfall)}</td></tr>"
        for w in data.warnings)
    return (f"<table><tr><th>{escape(t['scope'])}</th><th></th><th>{escape(t['measure'])}</th>"
            f"<th>{escape(t['actual'])}</th><th>{escape(t['expected'])}</th><th>{escape(t['shortfall'])}</th>"
            f"</tr>{rows}</table>")


def render(data: BulletinData, lang: str, *, generated: datetime | None = None) -> str:
    t = LABELS[lang]
    title = t["title"].format(city=CITY[lang])
    sections = [
        ("summary", t["summary"], "<ul>" + "".join(f"<li>{escape(s)}</li>" for s in summary_sentences(data, lang))
         + "</ul>"),
        ("headline", t["headline"], _headline(data, t)),
    ]
    if len(data.trend) >= 2:
        sections.append(("trend", t["trend"], _chart(charts.trend_chart(
            f"{t['trend']}（{t['output_unit']}）", [c.month for c in data.trend],
            [None if c.output_value is None else c.output_value / 1e4 for c in data.trend],
            lambda v: f"{v:,.1f}"), t["trend"])))
    sections += [
        ("sectors", t["sectors"], _sectors(data, t)),
        ("energy", t["intensity_chart"], _energy(data, t)),
        ("towns", t["towns"], _places(data.towns, t["town"], t)),
        ("parks", t["parks"], _places(data.parks, t["park"], t)),
        ("movers", t["movers"], _movers(data, t)),
        ("warnings", t["warnings"], _warnings(data, t)),
    ]
    body = "".join(f'<section id="{key}"><h2>{escape(heading)}</h2>{content}</section>'
                   for key, heading, content in sections if content)
    stamp = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    footer = (f"<footer><p>{escape(t['suppressed_note'])}</p><p>{escape(t['source'])}</p>"
              f"<p>{escape(stamp)}</p></footer>")
    period_line = t["period"].format(period=data.period.title(lang))
    page_text = title + period_line + body + footer
    css = font_face_css(page_text) + STYLE % {"family": CJK_FAMILY}
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (f'<!DOCTYPE html><html lang="{html_lang}"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{css}</style></head><body><header><h1>{escape(title)}</h1><p class=\"period\">"
            f"{escape(period_line)}</p></header>{body}{footer}</body></html>")
