"""The shift report as one self-contained HTML page (Chinese or English) with inline SVG charts.

Charts are plain SVG written here (bars are ``<rect class="mark">``), so the page needs no script library and
prints identically; a few lines of script only count, after layout, the marks the browser actually drew
(``data-drawn`` on each chart), which is what the test reads back from Chromium. Font: a subset of Noto Sans CJK
SC embedded in the page (``datafactory.render``), which Chromium embeds into the PDF it prints.
"""

from __future__ import annotations

from html import escape
from zoneinfo import ZoneInfo

from alerting.report.data import Oee, Report, alert_state
from datafactory.render import font_face_css

T = {
    "en": {
        "title": "Shift hand-over report", "plant": "Plant", "shift": "Shift", "period": "Period",
        "summary": "Plant OEE", "this": "This shift", "previous": "Previous shift", "last_week": "Same shift last week",
        "machines": "OEE per machine", "lines": "OEE per line", "machine": "Machine", "line": "Line",
        "a": "Availability", "p": "Performance", "q": "Quality", "oee": "OEE", "good": "Good", "scrap": "Scrap",
        "stops": "Stops", "down_min": "Down min", "setup_min": "Setup min",
        "delay_min": "Starved/blocked min", "downtime": "Top downtime reasons (Pareto)",
        "reason": "Reason", "category": "Category", "minutes": "Minutes", "share": "Share", "cum": "Cumulative",
        "energy": "Energy", "kwh": "Energy (kWh)", "cost": "Cost", "peak": "Peak demand (kW, 15 min)",
        "per_unit": "Energy per good unit (kWh)", "alerts": "Alerts of the shift", "rule": "Rule",
        "subject": "Subject", "severity": "Severity", "fired": "Fired", "state": "At hand-over",
        "by": "Acknowledged by",
        "gaps": "Data gaps", "no_data": "Time without data (min)", "none": "none",
        "open": "open", "acknowledged": "acknowledged", "resolved": "resolved", "generated": "Generated",
    },
    "zh": {
        "title": "交接班报告", "plant": "工厂", "shift": "班次", "period": "时段",
        "summary": "全厂 OEE", "this": "本班", "previous": "上一班", "last_week": "上周同班",
        "machines": "各设备 OEE", "lines": "各产线 OEE", "machine": "设备", "line": "产线",
        "a": "可用率", "p": "性能率", "q": "质量率", "oee": "OEE", "good": "良品", "scrap": "废品",
        "stops": "停机次数", "down_min": "故障停机 分", "setup_min": "换型 分",
        "delay_min": "待料/堵料 分", "downtime": "主要停机原因（帕累托）",
        "reason": "原因", "category": "类别", "minutes": "分钟", "share": "占比", "cum": "累计",
        "energy": "能源", "kwh": "电量（kWh）", "cost": "电费", "peak": "最大需量（kW，15 分钟）",
        "per_unit": "单位良品电耗（kWh）", "alerts": "本班告警", "rule": "规则",
        "subject": "对象", "severity": "级别", "fired": "触发", "state": "交班时", "by": "确认人",
        "gaps": "数据缺失", "no_data": "无数据时长（分钟）", "none": "无",
        "open": "未处理", "acknowledged": "已确认", "resolved": "已恢复", "generated": "生成时间",
    },
}


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def num(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _bars(title: str, labels: list[str], values: list[float], *, width: int = 640, unit: str = "%",
          scale: float = 100.0, cumulative: list[float] | None = None) -> str:
    """A horizontal bar chart; ``cumulative`` (0–1) adds the Pareto line."""
    row, left, right = 22, 190, 70
    height = 30 + row * len(labels)
    top = max([*values, 1.0 if unit == "%" else 1e-9])  # percentages on a 0–100 % scale, never stretched
    inner = width - left - right
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" data-marks="{len(values)}">']
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = 20 + i * row
        w = max(inner * v / top, 1.0)
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-size="12">{escape(label)}</text>')
        parts.append(f'<rect class="mark" x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="#3b6fb6"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 14}" font-size="11">{v * scale:.1f}{unit}</text>')
    if cumulative:
        pts = " ".join(f"{left + inner * c:.1f},{20 + i * row + row / 2:.1f}" for i, c in enumerate(cumulative))
        parts.append(f'<polyline class="cumulative" points="{pts}" fill="none" stroke="#c0392b" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _oee_cells(o: Oee) -> str:
    return "".join(f"<td>{pct(v)}</td>" for v in (o.availability, o.performance, o.quality, o.oee))


SCRIPT = """<script>
window.addEventListener('load', function () {
  document.querySelectorAll('svg.chart').forEach(function (svg) {
    var drawn = 0;
    svg.querySelectorAll('.mark').forEach(function (m) {
      var b = m.getBBox(); if (b.width > 0 && b.height > 0) drawn++;
    });
    svg.setAttribute('data-drawn', String(drawn));
  });
  document.body.setAttribute('data-ready', 'yes');
});
</script>"""

CSS = """body{font-family:'ReportCJK','Noto Sans CJK SC',sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #bbb;padding:3px 8px;font-size:12px;
text-align:right}td:first-child,th:first-child{text-align:left;white-space:nowrap}h1{font-size:20px}h2{font-size:15px;margin-top:22px}
.meta{font-size:12px;color:#555}@page{size:A4;margin:12mm}section{break-inside:avoid}"""


def render(r: Report, lang: str) -> str:
    t = T[lang]
    tz = ZoneInfo(r.timezone)
    w = r.window
    period = f"{w.start.astimezone(tz):%Y-%m-%d %H:%M} – {w.end.astimezone(tz):%Y-%m-%d %H:%M} ({r.timezone})"
    out = [f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">',
           f"<title>{t['title']} {escape(r.plant_label)} {w.day} {escape(w.name)}</title><style>{CSS}</style></head>",
           f"<body><h1>{t['title']}</h1><p class='meta'>{t['plant']}: {escape(r.plant_name)} ({escape(r.plant_label)})"
           f" · {t['shift']}: {escape(w.name)} {w.day} · {t['period']}: {period}</p>"]
    compare = [(t["this"], r.plant), (t["previous"], r.previous), (t["last_week"], r.last_week)]
    out.append(f"<section><h2>{t['summary']}</h2><table><tr><th></th><th>{t['a']}</th><th>{t['p']}</th>"
               f"<th>{t['q']}</th><th>{t['oee']}</th></tr>")
    out += [f"<tr><td>{name}</td>{_oee_cells(o) if o else '<td colspan=4>–</td>'}</tr>" for name, o in compare]
    out.append("</table>")
    shown = [(n, o.oee) for n, o in compare if o is not None and o.oee is not None]
    out.append(_bars(t["summary"], [n for n, _ in shown], [v for _, v in shown]) + "</section>")

    out.append(f"<section><h2>{t['lines']}</h2><table><tr><th>{t['line']}</th><th>{t['a']}</th><th>{t['p']}</th>"
               f"<th>{t['q']}</th><th>{t['oee']}</th></tr>")
    out += [f"<tr><td>{escape(line)}</td>{_oee_cells(o)}</tr>" for line, o in r.lines.items()]
    out.append("</table></section>")

    out.append(f"<section><h2>{t['machines']}</h2><table><tr><th>{t['machine']}</th><th>{t['a']}</th>"
               f"<th>{t['p']}</th><th>{t['q']}</th><th>{t['oee']}</th><th>{t['good']}</th><th>{t['scrap']}</th>"
               f"<th>{t['stops']}</th><th>{t['down_min']}</th><th>{t['setup_min']}</th><th>{t['delay_min']}</th>"
               "</tr>")
    for m in r.machines:
        o = m.oee
        out.append(f"<tr><td>{escape(m.machine)}</td>{_oee_cells(o)}<td>{num(o.good, 0)}</td>"
                   f"<td>{num(o.reject, 0)}</td><td>{o.stops}</td><td>{num(o.adot_s / 60)}</td>"
                   f"<td>{num(o.asut_s / 60)}</td><td>{num(o.adet_s / 60)}</td></tr>")
    out.append("</table>")
    out.append(_bars(t["machines"], [m.machine.rsplit("/", 1)[-1] for m in r.machines],
                     [m.oee.oee or 0.0 for m in r.machines]) + "</section>")

    out.append(f"<section><h2>{t['downtime']}</h2>")
    if r.downtime:
        out.append(f"<table><tr><th>{t['reason']}</th><th>{t['category']}</th><th>{t['minutes']}</th>"
                   f"<th>{t['stops']}</th><th>{t['share']}</th><th>{t['cum']}</th></tr>")
        out += [f"<tr><td>{escape(d['reason'])}</td><td>{escape(d['category'])}</td><td>{num(d['seconds'] / 60)}</td>"
                f"<td>{d['stops']}</td><td>{pct(d['share'])}</td><td>{pct(d['cumulative'])}</td></tr>"
                for d in r.downtime[:10]]
        top = r.downtime[:10]
        out.append("</table>" + _bars(t["downtime"], [d["reason"] for d in top], [d["seconds"] / 60 for d in top],
                                      unit=" min", scale=1.0, cumulative=[d["cumulative"] for d in top]))
    else:
        out.append(f"<p>{t['none']}</p>")
    out.append("</section>")

    e = r.energy
    out.append(f"<section><h2>{t['energy']}</h2><table><tr><th>{t['kwh']}</th><th>{t['cost']}</th>"
               f"<th>{t['peak']}</th><th>{t['good']}</th><th>{t['per_unit']}</th></tr><tr><td>{num(e['kwh'])}</td>"
               f"<td>{num(e['cost'], 2)}</td><td>{num(e['peak_kw_15min'])}</td><td>{num(e['good_count'], 0)}</td>"
               f"<td>{num(e['kwh_per_good_unit'], 3)}</td></tr></table></section>")

    out.append(f"<section><h2>{t['alerts']}</h2>")
    if r.alerts:
        out.append(f"<table><tr><th>{t['rule']}</th><th>{t['subject']}</th><th>{t['severity']}</th>"
                   f"<th>{t['fired']}</th><th>{t['state']}</th><th>{t['by']}</th></tr>")
        out += [f"<tr><td>{escape(a['rule'])}</td><td>{escape(a['subject'])}</td><td>{a['severity']}</td>"
                f"<td>{a['fired_at'].astimezone(tz):%m-%d %H:%M}</td><td>{t[alert_state(a, w)]}</td>"
                f"<td>{escape(a['acknowledged_by'] or '')}</td></tr>" for a in r.alerts]
        out.append("</table>")
    else:
        out.append(f"<p>{t['none']}</p>")
    out.append(f"</section><section><h2>{t['gaps']}</h2>")
    if r.gaps:
        out.append(f"<table><tr><th>{t['machine']}</th><th>{t['no_data']}</th></tr>")
        out += [f"<tr><td>{escape(g['machine'])}</td><td>{num(g['unknown_s'] / 60)}</td></tr>" for g in r.gaps]
        out.append("</table>")
    else:
        out.append(f"<p>{t['none']}</p>")
    out.append(f"</section><p class='meta'>{t['generated']}: {r.generated_at.astimezone(tz):%Y-%m-%d %H:%M}</p>")
    out.append(SCRIPT + "</body></html>")
    page = "\n".join(out)
    # The font is subset to the page's own characters, so it is added last (the chart SVGs live in the page too).
    return page.replace("<style>", f"<style>{font_face_css(page, 'ReportCJK')}", 1)
