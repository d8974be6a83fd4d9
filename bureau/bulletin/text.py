"""Words of the bulletin: number formats, headings in Simplified Chinese or English, and the short sentences
generated from the numbers. A missing (suppressed) number is always printed as "—", never as 0."""

from __future__ import annotations

from bureau.bulletin.data import BulletinData, Cell

DASH = "—"

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "{city}工业经济运行简报", "period": "统计期：{period}", "headline": "主要指标",
        "output": "工业总产值", "output_unit": "亿元", "output_ytd": "年初累计产值", "yoy": "同口径同比增速",
        "ytd": "累计同比增速", "energy": "综合能源消费量", "energy_unit": "万吨标准煤",
        "intensity": "单位产值能耗", "intensity_unit": "吨标准煤/万元", "electricity": "用电量",
        "electricity_unit": "亿千瓦时", "operating": "接入企业开工率", "enterprises": "报送企业",
        "enterprises_unit": "家", "sectors": "分行业产值与增速", "division": "行业", "towns": "镇街",
        "parks": "园区", "town": "镇街", "park": "园区", "movers": "增速变动较大的行业",
        "up": "增速最快", "down": "增速最慢", "warnings": "运行预警", "no_warnings": "本期无预警。",
        "scope": "范围", "measure": "指标", "actual": "实际值", "expected": "预期值", "shortfall": "偏离",
        "trend": "全市工业总产值走势", "intensity_chart": "分行业单位产值能耗",
        "suppressed_note": "“—”表示该单元格为保护单个企业数据而依法不予公布（抑制），不代表零。",
        "source": "数据来源：各企业月度报表及平台计量数据，经统计披露控制后发布。",
        "summary": "运行概况", "operating_chart": "接入企业开工率",
        "output_value": "产值", "electricity_kwh": "用电量", "connected_unit": "接入企业{n}家",
        "partial": "注意：{period}仅发布了{published}数据（{n}个月中的{k}个月），{missing}尚未发布；"
                   "产值、能源消费量和用电量的本期合计不予列出，各表为{months}合计。",
        "sums_note": "工业总产值、综合能源消费量和用电量为{period}各月合计，单位产值能耗由合计计算；"
                     "各表同为各月合计；报送企业数、累计值和开工率为{month}数。",
        "detail_period": "（{period}合计）", "detail_months": "（仅{months}合计）",
        "trend_gaps": "折线断开处为未发布或不予公布的月份；横轴按时间等距。",
        "scope_kind_division": "行业", "scope_kind_town": "镇街", "unit": "单位",
        "unit_output_value": "亿元", "unit_electricity_kwh": "亿千瓦时",
        "generated": "生成时间：{stamp}（北京时间）", "page": "第 {page} 页 / 共 {pages} 页",
    },
    "en": {
        "title": "{city} industrial economy bulletin", "period": "Period: {period}", "headline": "Headline figures",
        "output": "Gross industrial output", "output_unit": "100 million yuan", "output_ytd": "Output year to date",
        "yoy": "Same-scope growth", "ytd": "Growth year to date", "energy": "Energy consumption",
        "energy_unit": "10,000 tce", "intensity": "Energy intensity", "intensity_unit": "tce per 10,000 yuan",
        "electricity": "Electricity", "electricity_unit": "100 million kWh", "operating": "Operating rate",
        "enterprises": "Reporting enterprises", "enterprises_unit": "", "sectors": "Output and growth by sector",
        "division": "Sector", "towns": "Towns", "parks": "Industrial parks", "town": "Town", "park": "Park",
        "movers": "Movers", "up": "Fastest growth", "down": "Slowest growth", "warnings": "Early warnings",
        "no_warnings": "No early warnings this period.", "scope": "Scope", "measure": "Measure",
        "actual": "Actual", "expected": "Expected", "shortfall": "Shortfall", "trend": "City output trend",
        "intensity_chart": "Energy intensity by sector",
        "suppressed_note": "\u201c—\u201d marks a cell withheld to protect individual enterprise data "
                           "(suppressed); it is not zero.",
        "source": "Source: enterprises' monthly reports and platform metering, after disclosure control.",
        "summary": "Summary", "operating_chart": "Operating rate of connected enterprises",
        "output_value": "output", "electricity_kwh": "electricity", "connected_unit": "of {n} connected",
        "partial": "Note: only {published} of {period} is published ({k} of {n} months; {missing} not yet); "
                   "no period totals of output, energy or electricity are shown,"
                   " and the tables add up {months} only.",
        "sums_note": "Output, energy and electricity are summed over the months of {period}, energy intensity is "
                     "computed from the sums, in the tables too; enterprises, year-to-date figures and operating"
                     " rate are {month}'s.",
        "detail_period": " ({period}, summed)", "detail_months": " ({months} only, summed)",
        "trend_gaps": "Breaks in the line are months not published or withheld; months are spaced by time.",
        "scope_kind_division": "Sector", "scope_kind_town": "Town", "unit": "Unit",
        "unit_output_value": "100 million yuan", "unit_electricity_kwh": "100 million kWh",
        "generated": "Generated {stamp} (Beijing time)", "page": "Page {page} of {pages}",
    },
}
CITY = {"zh": "全市", "en": "City"}


def yi(value_wan: float | None) -> str:
    """万元 → 亿元 (100 million yuan), two decimals."""
    return DASH if value_wan is None else f"{value_wan / 1e4:,.2f}"


def pct(fraction: float | None, *, signed: bool = True) -> str:
    if fraction is None:
        return DASH
    return f"{fraction * 100:+.1f}%" if signed else f"{fraction * 100:.1f}%"


def wan_tce(tce: float | None) -> str:
    return DASH if tce is None else f"{tce / 1e4:,.2f}"


def yi_kwh(kwh: float | None) -> str:
    return DASH if kwh is None else f"{kwh / 1e8:,.2f}"


def intensity(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def _growth_words(g: float, lang: str) -> str:
    if lang == "zh":
        return f"同比增长{g * 100:.1f}%" if g >= 0 else f"同比下降{-g * 100:.1f}%"
    return f"up {g * 100:.1f}% year on year" if g >= 0 else f"down {-g * 100:.1f}% year on year"


def summary_sentences(data: BulletinData, lang: str) -> list[str]:
    """Short sentences, each built only from published numbers; a suppressed figure gets no sentence."""
    city = data.last_city
    out: list[str] = []
    output = data.period_output
    if output is not None:
        growth = city.ytd_growth if data.period.is_multi_month else city.yoy_growth
        tail = f"，{_growth_words(growth, lang)}" if (lang == "zh" and growth is not None) else (
            f", {_growth_words(growth, lang)}" if growth is not None else "")
        out.append(f"{data.period.title(lang)}全市{city.enterprises}家报送企业完成工业总产值{yi(output)}亿元{tail}。"
                   if lang == "zh" else
                   f"In {data.period.title(lang)} the city's {city.enterprises} reporting enterprises produced "
                   f"{yi(output)} hundred million yuan of output{tail}.")
    top, bottom = data.movers(1)
    if top and bottom:
        out.append(f"增速最快的行业是{top[0].label}（{pct(top[0].yoy_growth)}），最慢的是{bottom[0].label}"
                   f"（{pct(bottom[0].yoy_growth)}）。" if lang == "zh" else
                   f"The fastest-growing sector was {top[0].label} ({pct(top[0].yoy_growth)}), the slowest "
                   f"{bottom[0].label} ({pct(bottom[0].yoy_growth)}).")
    energy, ratio = data.period_energy, data.period_intensity
    if energy is not None and ratio is not None:
        out.append(f"综合能源消费量{wan_tce(energy)}万吨标准煤，单位产值能耗{intensity(ratio)}"
                   "吨标准煤/万元。" if lang == "zh" else
                   f"Energy consumption was {wan_tce(energy)} ten-thousand tce, "
                   f"{intensity(ratio)} tce per 10,000 yuan of output.")
    if city.connected and city.operating_rate is not None:
        out.append(f"接入平台的{city.connected}家企业开工率为{pct(city.operating_rate, signed=False)}。"
                   if lang == "zh" else
                   f"{pct(city.operating_rate, signed=False)} of the {city.connected} connected enterprises "
                   "were operating.")
    n = len(data.warnings)
    out.append((f"本期共有{n}项运行预警。" if n else LABELS["zh"]["no_warnings"]) if lang == "zh" else
               (f"{n} early warning(s) were raised." if n else LABELS["en"]["no_warnings"]))
    return out


def cell_row(cell: Cell) -> tuple[str, str, str, str]:
    """(output in 亿元, growth, energy intensity, enterprises) of a table row; "—" where suppressed."""
    return yi(cell.output_value), pct(cell.yoy_growth), intensity(cell.energy_intensity), str(cell.enterprises)
