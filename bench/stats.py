"""Small statistics: percentiles of latency samples and medians across repeats."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from streaming import metrics

PERCENTILES = (50, 90, 95)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (:func:`streaming.metrics.percentile`) to 0.1, or None without values."""
    value = metrics.percentile(values, q)
    return None if value is None else round(float(value), 1)


def distribution(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """count, p50, p90, p95 and max of the values that are not None."""
    present = [float(v) for v in values if v is not None]
    summary: dict[str, float | int | None] = {"count": len(present)}
    for q in PERCENTILES:
        summary[f"p{q}"] = percentile(present, q)
    summary["max"] = round(max(present), 1) if present else None
    return summary


def median(values: Iterable[float | None], digits: int = 1) -> float | None:
    """The median of the values that are not None, or None."""
    present = [float(v) for v in values if v is not None]
    return round(float(np.median(present)), digits) if present else None


def median_of(summaries: Sequence[dict[str, float | int | None]]) -> dict[str, float | int | None]:
    """Each key's median across per-repeat summaries (counts are summed)."""
    if not summaries:
        return distribution([])
    merged: dict[str, float | int | None] = {}
    for key in summaries[0]:
        values = [s[key] for s in summaries]
        merged[key] = sum(int(v or 0) for v in values) if key == "count" else median(values)
    return merged


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The least-squares slope of ``ys`` over ``xs``, or None with fewer than two distinct xs."""
    if len(set(xs)) < 2:
        return None
    return float(np.polyfit(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), 1)[0])
