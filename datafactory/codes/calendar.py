"""Spring Festival (春节) dates and the moving-holiday regressor used by seasonal adjustment; month arithmetic.

Factories close for about three weeks around the Spring Festival, and the festival moves between late January
and mid February, so January and February output cannot be adjusted with fixed monthly factors. The regressor
for a month is the share of its days inside the holiday window [festival − 7 days, festival + 15 days].
Dates: the first day of the first lunar month, 2015–2035 (published by the Purple Mountain Observatory).
"""

from __future__ import annotations

import calendar as _calendar
import re
from datetime import date, timedelta

SPRING_FESTIVAL: dict[int, date] = {
    2015: date(2015, 2, 19),
    2016: date(2016, 2, 8),
    2017: date(2017, 1, 28),
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}
WINDOW_BEFORE = 7
WINDOW_AFTER = 15
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})(-01)?$")


def holiday_share(month: date) -> float:
    """Share of the month's days inside the Spring Festival holiday window (0 outside January–March)."""
    festival = SPRING_FESTIVAL.get(month.year)
    if festival is None:
        raise ValueError(
            f"no Spring Festival date shipped for {month.year} (have {min(SPRING_FESTIVAL)}–{max(SPRING_FESTIVAL)})"
        )
    start = festival - timedelta(days=WINDOW_BEFORE)
    end = festival + timedelta(days=WINDOW_AFTER)  # inclusive
    days = _calendar.monthrange(month.year, month.month)[1]
    first, last = month.replace(day=1), month.replace(day=days)
    overlap = (min(end, last) - max(start, first)).days + 1
    return max(overlap, 0) / days


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_range(first: date, count: int) -> list[date]:
    return [add_months(first, i) for i in range(count)]


def parse_month(text: str) -> date | None:
    """``YYYY-MM`` (or ``YYYY-MM-01``) as the month's first day; None when the text is not a month."""
    m = _MONTH_RE.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        return None
    return date(int(m.group(1)), int(m.group(2)), 1)
