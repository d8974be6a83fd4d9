"""The bulletin as one self-contained HTML page: styles inline, charts as SVG data URIs, the CJK font subset
embedded. Nothing is fetched when the page is opened or printed."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from bureau.bulletin import charts
from bureau.bulletin.cjk_font import CJK_FAMILY
from bureau.bulletin.data import BulletinData, Cell, Warning_
from bureau.bulletin.period import month_title
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
from datafactory.render import font_face_css

BEIJING = ZoneInfo("Asia/Shanghai")

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
thead { display: table-header-group; } tr { break-inside: avoid; } .neg { color: #c53030; } .pos { color: #2b6cb0; }
.suppressed { color: #718096; }
figure.chart { margin: 8px 0; break-inside: avoid; } figure.chart img { width: 100%%; height: auto; }
.notice { background: #fffbea; border-left: 4px solid #d69e2e; padding: 6px 10px; margin: 8px 0; }
.note { font-size: 11px; color: #4a5568; margin: 4px 0; }
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
    head = (f"<thead><tr><th>{escape(first)}</th><th></th><th>{escape(t['output'])}（{escape(t['output_unit'])}）"
            f"</th><th>{escape(t['yoy'])}</th><th>{escape(t['intensity'])}</th><th>{escape(t['enterprises'])}</th>"
            "</tr></thead>")
    rows = []
    for c in cells:
        output, growth, energy, count = cell_row(c)
        key = escape(c.key) if show_key else ""
        rows.append(f"<tr><td>{key}</td><td>{escape(c.label)}</td><td>{_num(output)}</td>"
                    f"<td>{_num(growth, c.yoy_growth)}</td><td>{_num(energy)}</td><td>{count}</td></tr>")
    return f"<table>{head}<tbody>{''.join(rows)}</tbody></table>"


def _headline(data: BulletinData, t: dict[str, str], lang: str) -> str:
    city = data.last_city
    growth_key, growth = ("ytd", city.ytd_growth) if data.period.is_multi_month else ("yoy", city.yoy_growth)
    kpis = [
        _kpi("output", t["output"], yi(data.period_output), t["output_unit"]),
        _kpi(growth_key, t[growth_key], pct(growth), ""),
        _kpi("output_ytd", t["output_ytd"], yi(city.output_ytd), t["output_unit"]),
        _kpi("enterprises", t["enterprises"], str(city.enterprises), t["enterprises_unit"]),
        _kpi("energy", t["energy"], wan_tce(data.period_energy), t["energy_unit"]),
        _kpi("intensity", t["intensity"], intensity(data.period_intensity), t["intensity_unit"]),
        _kpi("electricity", t["electricity"], yi_kwh(data.period_electricity), t["electricity_unit"]),
        _kpi("operating", t["operating"], pct(city.operating_rate, signed=False),
             t["connected_unit"].format(n=city.connected)),
    ]
    note = ""
    if data.period.is_multi_month:
        text = t["sums_note"].format(period=data.period.title(lang), month=month_title(data.detail_month, lang))
        note = f'<p class="note" id="sums-note">{escape(text)}</p>'
    return f'<div class="kpis">{"".join(kpis)}</div>{note}'


def _months(data: BulletinData, lang: str) -> str:
    return ("、" if lang == "zh" else ", ").join(month_title(m, lang) for m in data.detail_months)


def _detail_label(data: BulletinData, t: dict[str, str], lang: str) -> str:
    """What the detail tables show: the month, the whole period summed, or the published months summed."""
    if not data.period.is_multi_month:
        return ""
    if data.missing:
        return t["detail_months"].format(months=_months(data, lang))
    return t["detail_period"].format(period=data.period.title(lang))


def _partial(data: BulletinData, t: dict[str, str], lang: str) -> str:
    """The warning that a period is incomplete: which months are there and which are not."""
    if not data.missing:
        return ""
    text = t["partial"].format(
        period=data.period.title(lang), published="、".join(month_title(c.month, lang) for c in data.city)
        if lang == "zh" else ", ".join(month_title(c.month, lang) for c in data.city),
        missing=("、" if lang == "zh" else ", ").join(month_title(m, lang) for m in data.missing),
        n=len(data.period.months), k=len(data.city), month=month_title(data.detail_month, lang),
        months=_months(data, lang))
    return f'<p class="notice" id="partial">{escape(text)}</p>'


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
    return f"<ul>{''.join(items)}</ul>" if items else ""  # no same-scope growth over a quarter or a year


def _warning_row(w: Warning_, data: BulletinData, t: dict[str, str]) -> str:
    kind = t.get(f"scope_kind_{w.scope_kind}", w.scope_kind)
    scope = f"{w.scope} {data.division_names.get(w.scope, '')}".strip() if w.scope_kind == "division" else w.scope
    fmt, unit = (yi_kwh, "unit_electricity_kwh") if w.measure == "electricity_kwh" else (yi, "unit_output_value")
    return (f"<tr><td>{escape(kind)}</td><td>{escape(scope)}</td><td>{escape(t.get(w.measure, w.measure))}</td>"
            f"<td>{escape(t.get(unit, ''))}</td><td>{fmt(w.actual)}</td><td>{fmt(w.expected)}</td>"
            f"<td>{_num(pct(w.shortfall), w.shortfall)}</td></tr>")


def _warnings(data: BulletinData, t: dict[str, str]) -> str:
    if not data.warnings:
        return f"<p>{escape(t['no_warnings'])}</p>"
    rows = "".join(_warning_row(w, data, t) for w in data.warnings)
    return (f"<table><thead><tr><th>{escape(t['scope'])}</th><th></th><th>{escape(t['measure'])}</th>"
            f"<th>{escape(t['unit'])}</th><th>{escape(t['actual'])}</th><th>{escape(t['expected'])}</th>"
            f"<th>{escape(t['shortfall'])}</th></tr></thead><tbody>{rows}</tbody></table>")


def _page_css(t: dict[str, str]) -> str:
    """Page numbers in the printed PDF (CSS paged media margin boxes, which Chromium prints)."""
    before, rest = t["page"].split("{page}")
    middle, after = rest.split("{pages}")
    content = f'"{before}" counter(page) "{middle}" counter(pages) "{after}"'
    return (f"@page {{ @bottom-center {{ content: {content}; font-family: 'BulletinCJK', '{CJK_FAMILY}', sans-serif;"
            " font-size: 9px; color: #4a5568; } }")


def render(data: BulletinData, lang: str, *, generated: datetime | None = None) -> str:
    t = LABELS[lang]
    title = t["title"].format(city=CITY[lang])
    detail = _detail_label(data, t, lang)
    sections = [
        ("summary", t["summary"], "<ul>" + "".join(f"<li>{escape(s)}</li>" for s in summary_sentences(data, lang))
         + "</ul>"),
        ("headline", t["headline"], _headline(data, t, lang)),
    ]
    months, values = data.trend_series()
    if sum(v is not None for v in values) >= 2:
        sections.append(("trend", t["trend"], _chart(charts.trend_chart(
            f"{t['trend']}（{t['output_unit']}）", months, [None if v is None else v / 1e4 for v in values],
            lambda v: f"{v:,.1f}"), t["trend"]) + f'<p class="note">{escape(t["trend_gaps"])}</p>'))
    sections += [
        ("sectors", t["sectors"] + detail, _sectors(data, t)),
        ("energy", t["intensity_chart"] + detail, _energy(data, t)),
        ("towns", t["towns"] + detail, _places(data.towns, t["town"], t)),
        ("parks", t["parks"] + detail, _places(data.parks, t["park"], t)),
        ("movers", t["movers"] + detail, _movers(data, t)),
        ("warnings", t["warnings"], _warnings(data, t)),
    ]
    body = "".join(f'<section id="{key}"><h2>{escape(heading)}</h2>{content}</section>'
                   for key, heading, content in sections if content)
    stamp = (generated or datetime.now(UTC)).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    footer = (f"<footer><p>{escape(t['suppressed_note'])}</p><p>{escape(t['source'])}</p>"
              f"<p>{escape(t['generated'].format(stamp=stamp))}</p></footer>")
    period_line = t["period"].format(period=data.period.title(lang))
    partial = _partial(data, t, lang)
    page_text = title + period_line + partial + body + footer + t["page"]
    css = font_face_css(page_text, "BulletinCJK") + STYLE % {"family": CJK_FAMILY} + _page_css(t)
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (f'<!DOCTYPE html><html lang="{html_lang}"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{css}</style></head><body><header><h1>{escape(title)}</h1><p class=\"period\">"
            f"{escape(period_line)}</p>{partial}</header>{body}{footer}</body></html>")
