"""Reporting periods for the bulletin and open data: a month (``2026-10``), a quarter (``2026-Q3``) or a year
(``2026``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from datafactory.codes.calendar import add_months
from datafactory.errors import DataFactoryError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


class PeriodError(DataFactoryError):
    """A period that is neither YYYY-MM, YYYY-Qn nor YYYY."""


@dataclass(frozen=True)
class Period:
    label: str          # '2026-10', '2026-Q3' or '2026'
    months: tuple[date, ...]

    @property
    def first(self) -> date:
        return self.months[0]

    @property
    def last(self) -> date:
        return self.months[-1]

    @property
    def end(self) -> date:
        """First day after the period."""
        return add_months(self.last, 1)

    @property
    def is_quarter(self) -> bool:
        return len(self.months) == 3

    @property
    def is_multi_month(self) -> bool:
        """A quarter or a year: figures are sums over months, detail tables show one month."""
        return len(self.months) > 1

    def title(self, lang: str) -> str:
        if len(self.months) == 12:
            return f"{self.first.year}年全年" if lang == "zh" else f"Year {self.first.year}"
        if self.is_quarter:
            quarter = (self.first.month - 1) // 3 + 1
            return f"{self.first.year}年第{quarter}季度" if lang == "zh" else f"Q{quarter} {self.first.year}"
        return month_title(self.first, lang)


def month_title(month: date, lang: str) -> str:
    return f"{month.year}年{month.month}月" if lang == "zh" else f"{month:%B %Y}"


def parse_period(text: str) -> Period:
    if m := _MONTH.match(text.strip()):
        year, month = int(m.group(1)), int(m.group(2))
        if 1 <= month <= 12:
            return Period(f"{year:04d}-{month:02d}", (date(year, month, 1),))
    if m := _QUARTER.match(text.strip()):
        year, quarter = int(m.group(1)), int(m.group(2))
        first = date(year, 3 * quarter - 2, 1)
        return Period(f"{year:04d}-Q{quarter}", tuple(add_months(first, i) for i in range(3)))
    if m := _YEAR.match(text.strip()):
        year = int(m.group(1))
        return Period(f"{year:04d}", tuple(date(year, i, 1) for i in range(1, 13)))
    raise PeriodError(f"{text!r} is not a period: use YYYY-MM (e.g. 2026-10), YYYY-Qn (e.g. 2026-Q3) or YYYY"
                      " (e.g. 2026)")
