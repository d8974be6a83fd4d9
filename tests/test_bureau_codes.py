"""Code systems the bureau relies on: GB 32100-2015 credit codes, GB/T 4754-2017 industries, size classes."""

from __future__ import annotations

import pytest

from datafactory.codes.calendar import SPRING_FESTIVAL, holiday_share
from datafactory.codes.credit_code import ALPHABET, check_character, credit_code_problem
from datafactory.codes.gbt4754 import (
    MANUFACTURING_DIVISIONS,
    all_codes,
    children,
    industry_code_problem,
    is_manufacturing,
    lookup,
    validate_industry_code,
)
from datafactory.codes.sizing import above_designated, size_class

# Published codes of real organisations (their check characters are as printed on the licences).
VALID_CODES = ["91350100M000100Y43", "91110000600037341L", "914403001922038216"]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_credit_codes(code: str) -> None:
    assert credit_code_problem(code) is None
    assert check_character(code[:17]) == code[17]


@pytest.mark.parametrize("code", VALID_CODES)
def test_every_corrupted_check_character_is_rejected(code: str) -> None:
    for wrong in ALPHABET:
        if wrong != code[17]:
            problem = credit_code_problem(code[:17] + wrong)
            assert problem is not None and "check character" in problem


def test_malformed_credit_codes() -> None:
    assert "18" in (credit_code_problem("91350100M000100Y4") or "")
    assert "not allowed" in (credit_code_problem("91350100M000100I43") or "")  # I is not in the alphabet


def test_gbt4754_sections_and_divisions() -> None:
    codes = all_codes()
    sections = [c for c in codes if c.level == "section"]
    divisions = [c for c in codes if c.level == "division"]
    assert [s.code for s in sections] == list("ABCDEFGHIJKLMNOPQRST")
    assert len(divisions) == 97 and {d.code for d in divisions} == {f"{i:02d}" for i in range(1, 98)}
    assert lookup("C").name == "制造业"
    assert [d.code for d in children("C")] == list(MANUFACTURING_DIVISIONS)
    assert lookup("13").section == "C" and lookup("43").section == "C"
    assert lookup("12").section == "B" and lookup("44").section == "D"


def test_gbt4754_manufacturing_groups_and_classes() -> None:
    groups = [c for c in all_codes() if c.level == "group"]
    classes = [c for c in all_codes() if c.level == "class"]
    # GB/T 4754-2017 manufacturing: 31 divisions, 179 groups, 609 classes.
    assert len(groups) == 179 and len(classes) == 609
    assert all(is_manufacturing(c.code) for c in classes)
    assert all(lookup(c.parent).level == "group" and c.code.startswith(c.parent) for c in classes)
    assert lookup("C3484").name == "机械零部件加工"
    assert lookup("3963").name == "智能无人飞行器制造"
    assert lookup("C3963").division == "39" and lookup("3963").qualified == "C3963"
    assert validate_industry_code("3491") == "C3491"
    assert [c.code for c in children("348")] == ["3481", "3482", "3483", "3484", "3489"]


@pytest.mark.parametrize(
    ("code", "fragment"),
    [("3499x", "not in"), ("3485", "not in"), ("C44", "belongs to section D"), ("4411", "outside manufacturing"),
     ("X13", "belongs to section C"), ("", "not in")],
)
def test_gbt4754_invalid_codes(code: str, fragment: str) -> None:
    problem = industry_code_problem(code)
    assert problem is not None and fragment in problem
    with pytest.raises(ValueError):
        lookup(code)


@pytest.mark.parametrize(
    ("employees", "revenue", "expected"),
    [(1000, 40_000, "large"), (1000, 39_999, "medium"), (999, 90_000, "medium"), (300, 2_000, "medium"),
     (5000, 1_999, "small"), (20, 300, "small"), (19, 10_000, "micro"), (500, 299, "micro")],
)
def test_size_class_needs_both_conditions(employees: int, revenue: float, expected: str) -> None:
    assert size_class(employees, revenue) == expected


def test_above_designated_threshold() -> None:
    assert above_designated(2000.0) and not above_designated(1999.9)


def test_spring_festival_share_moves_between_january_and_february() -> None:
    from datetime import date

    assert SPRING_FESTIVAL[2026] == date(2026, 2, 17)
    # 2023: festival 22 Jan, window 15 Jan–6 Feb → 17 January days, 6 February days.
    assert holiday_share(date(2023, 1, 1)) == pytest.approx(17 / 31)
    assert holiday_share(date(2023, 2, 1)) == pytest.approx(6 / 28)
    assert holiday_share(date(2026, 1, 1)) == 0 and holiday_share(date(2026, 6, 1)) == 0
