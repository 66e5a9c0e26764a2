"""Small statistics used by the report, with their definitions.

Percentiles use the **nearest-rank** method: the p-th percentile of n values sorted
ascending is the value at 1-based rank ceil(p/100 * n). The median is the 50th
percentile by that rule (for an even count: the lower of the two middle values). It
is always one of the observed values, which keeps the figures exact and testable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0-100]; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def pct(part: float, whole: float) -> float | None:
    """``part`` of ``whole`` in % (one decimal); None when ``whole`` is 0."""
    if not whole:
        return None
    return round(100 * part / whole, 1)


def change_pct(now: float, before: float) -> float | None:
    """Change against the previous period in %; None when the previous figure is 0."""
    if not before:
        return None
    return round(100 * (now - before) / before, 1)
