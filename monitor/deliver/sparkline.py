"""A Unicode sparkline of index values, for the alert emails and the CLI's history table.

A module of its own, importing nothing of `monitor`: `monitor history` draws one per
theatre and should not load the mail composition (`monitor.deliver.content`) to do it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SPARKLINE_WIDTH = 28


SPARK_CHARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], *, width: int = SPARKLINE_WIDTH) -> str:
    """A Unicode sparkline of index values on the fixed 0–100 scale, at most `width` wide.

    Long series are cut into `width` consecutive buckets and each bucket shows its maximum,
    so a short spike stays visible.
    """
    points = [float(value) for value in values if math.isfinite(value)]
    if not points:
        return ""
    count = len(points)
    if count > width:
        points = [max(points[i * count // width : (i + 1) * count // width]) for i in range(width)]
    top = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[min(top, max(0, round(p / 100.0 * top)))] for p in points)
