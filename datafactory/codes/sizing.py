"""Size class of an industrial enterprise by 国统字〔2017〕213号《统计上大中小微型企业划分办法（2017）》.

For industry (采矿业, 制造业, 电力、热力、燃气及水生产和供应业): large = employees ≥ 1000 AND operating revenue
≥ 40,000 万元; medium = employees ≥ 300 AND revenue ≥ 2,000 万元; small = employees ≥ 20 AND revenue ≥ 300 万元;
micro = below small. A class needs BOTH conditions; an enterprise that meets only one falls to the next class
down. Above designated size (规模以上工业企业) = annual main business revenue ≥ 2,000 万元 (国家统计局, since 2011).
"""

from __future__ import annotations

# (class, minimum employees, minimum annual revenue in 10,000 yuan), largest first.
SIZE_RULES: tuple[tuple[str, int, float], ...] = (
    ("large", 1000, 40_000.0),
    ("medium", 300, 2_000.0),
    ("small", 20, 300.0),
)
ABOVE_DESIGNATED_REVENUE = 2_000.0  # 万元 per year


def size_class(employees: int, annual_revenue: float) -> str:
    """'large', 'medium', 'small' or 'micro' for an industrial enterprise (revenue in 10,000 yuan per year)."""
    for name, min_employees, min_revenue in SIZE_RULES:
        if employees >= min_employees and annual_revenue >= min_revenue:
            return name
    return "micro"


def above_designated(annual_revenue: float) -> bool:
    return annual_revenue >= ABOVE_DESIGNATED_REVENUE
