"""Reading CSV and XLSX files into rows of strings, keeping the spreadsheet row number of each.

Row 1 is the header, so the first data row is row 2 — the number a user sees in Excel or a text editor.
Raises ``ImportFileError`` for a file that cannot be read at all.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from datafactory.errors import DataFactoryError

EXTRA_KEY = "\x00extra"  # marks a CSV row with more values than header columns


class ImportFileError(DataFactoryError):
    """The file cannot be read as a table (missing, wrong format, no header)."""


@dataclass(frozen=True)
class Problem:
    row: int  # spreadsheet row number (header = 1); 0 for the file itself
    column: str  # column name, '' when the whole row or file is concerned
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row else "file"
        return f"{where}, column {self.column!r}: {self.message}" if self.column else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class Table:
    header: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m")
    if isinstance(value, date):
        return value.strftime("%Y-%m")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_table(path: Path) -> Table:
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    if suffix in (".csv", ".txt"):
        return _read_csv(path)
    raise ImportFileError(f"{path}: unsupported file type {suffix!r}; use .csv or .xlsx")


def _read_csv(path: Path) -> Table:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImportFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration as err:
        raise ImportFileError(f"{path}: empty file, expected a header row") from err
    table = Table(header)
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        padded = [*values, *[""] * (len(header) - len(values))]
        row = {h: padded[i].strip() for i, h in enumerate(header)}
        if len(values) > len(header):
            row[EXTRA_KEY] = str(len(values) - len(header))
        table.rows.append((number, row))
    return table


def _read_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as err:
        raise ImportFileError(f"{path}: cannot read as XLSX: {err}") from err
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    try:
        header = [_cell_text(h) for h in next(rows)]
    except StopIteration as err:
        raise ImportFileError(f"{path}: empty sheet, expected a header row") from err
    table = Table(header)
    for number, values in enumerate(rows, start=2):
        texts = [_cell_text(v) for v in values]
        if not any(texts):
            continue
        texts += [""] * (len(header) - len(texts))
        table.rows.append((number, {h: texts[i] for i, h in enumerate(header) if h}))
    book.close()
    return table
