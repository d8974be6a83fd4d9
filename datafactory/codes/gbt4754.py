"""GB/T 4754-2017 《国民经济行业分类》 (Industrial classification for national economic activities).

The shipped table ``gbt4754_2017.csv`` holds all 20 sections (门类 A–T), all 97 divisions (大类, 2 digits) and,
for manufacturing (section C, divisions 13–43), all 179 groups (中类, 3 digits) and 609 classes (小类, 4 digits).
Groups and classes of the other sections are not shipped; a code below division level outside manufacturing is
therefore reported as "not in the shipped table" rather than guessed.

Codes are written either bare (``3484``) or with the section letter (``C3484``); both forms are accepted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TABLE_PATH = Path(__file__).with_name("gbt4754_2017.csv")
MANUFACTURING_DIVISIONS = tuple(f"{d:02d}" for d in range(13, 44))
LEVELS = ("section", "division", "group", "class")


@dataclass(frozen=True)
class IndustryCode:
    code: str  # 'C' for a section, otherwise digits: '34', '348', '3484'
    level: str  # section, division, group, class
    parent: str  # '' for sections
    name: str

    @property
    def section(self) -> str:
        return self.code if self.level == "section" else _table()[self.division].parent

    @property
    def division(self) -> str:
        return "" if self.level == "section" else self.code[:2]

    @property
    def qualified(self) -> str:
        """The code with its section letter, e.g. 'C3484'."""
        return self.code if self.level == "section" else self.section + self.code


@lru_cache(maxsize=1)
def _table() -> dict[str, IndustryCode]:
    with TABLE_PATH.open(encoding="utf-8", newline="") as f:
        return {r["code"]: IndustryCode(r["code"], r["level"], r["parent"], r["name"]) for r in csv.DictReader(f)}


def all_codes() -> list[IndustryCode]:
    return list(_table().values())


def _bare(code: str) -> str:
    code = code.strip().upper()
    if len(code) > 1 and code[0].isalpha():
        return code[1:]
    return code


def industry_code_problem(code: str) -> str | None:
    """Why ``code`` is not a GB/T 4754-2017 code of the shipped table, or None if it is one."""
    raw = code.strip().upper()
    bare = _bare(raw)
    entry = _table().get(bare)
    if entry is None:
        if bare[:2] in _table() and len(bare) > 2 and bare[:2] not in MANUFACTURING_DIVISIONS:
            return f"industry code {code!r}: groups and classes outside manufacturing are not in the shipped table"
        return f"industry code {code!r} is not in GB/T 4754-2017"
    if len(raw) > 1 and raw[0].isalpha() and entry.level != "section" and raw[0] != entry.section:
        return f"industry code {code!r}: division {entry.division} belongs to section {entry.section}, not {raw[0]}"
    return None


def lookup(code: str) -> IndustryCode:
    """The table entry for ``code`` ('C3484', '3484', '34' or 'C'); raises ValueError for an unknown code."""
    problem = industry_code_problem(code)
    if problem:
        raise ValueError(problem)
    return _table()[_bare(code)]


def is_manufacturing(code: str) -> bool:
    return lookup(code).division in MANUFACTURING_DIVISIONS


def children(code: str) -> list[IndustryCode]:
    parent = lookup(code).code
    return [c for c in _table().values() if c.parent == parent]


def validate_industry_code(code: str) -> str:
    """Pydantic-style validator: returns the qualified code ('C3484') or raises ValueError."""
    return lookup(code).qualified
