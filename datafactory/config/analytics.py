"""Analytics section of the plant config: state taxonomy mapping, shift calendar, tariff, thresholds.

Owned by the analytics service; every field has a default so a plant config may omit the whole section.
"""

from __future__ import annotations

from datafactory.config.base import StrictModel


class AnalyticsConfig(StrictModel):
    """Placeholder until the analytics models land: accepts no keys, so nothing is silently ignored."""
