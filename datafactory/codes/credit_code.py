"""Unified social credit code (统一社会信用代码), GB 32100-2015.

18 characters from a 31-character alphabet (digits and upper-case letters without I, O, Z, S, V). The last
character is a check character computed modulo 31 over the first 17 with weights 3^i mod 31.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_character(first17: str) -> str:
    """The check character for the first 17 characters of a code."""
    if len(first17) != 17:
        raise ValueError(f"need 17 characters to compute a check character, got {len(first17)}")
    try:
        total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    except KeyError as err:
        raise ValueError(f"character {err.args[0]!r} is not allowed in a unified social credit code") from err
    return ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Why ``code`` is not a valid unified social credit code, or None if it is valid."""
    if len(code) != 18:
        return f"unified social credit code {code!r} has {len(code)} characters; it must have 18"
    bad = [c for c in code if c not in _VALUE]
    if bad:
        return f"unified social credit code {code!r} contains {bad[0]!r}, not allowed by GB 32100-2015"
    expected = check_character(code[:17])
    if code[17] != expected:
        return f"unified social credit code {code!r} has check character {code[17]!r}; GB 32100-2015 gives {expected!r}"
    return None


def validate_credit_code(code: str) -> str:
    problem = credit_code_problem(code)
    if problem:
        raise ValueError(problem)
    return code
