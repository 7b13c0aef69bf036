"""LatencyHistogram: per-request timings kept in fixed memory, however many requests pass.

Fixed bucket bounds (the server's Prometheus buckets) plus a count and a sum: recording is
O(buckets) and the structure never grows, so a library process that never reads it does not
leak (a list of every sample would grow by one float per request forever).
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                   7.5, 10.0, 20.0, 40.0, 80.0)


class LatencySummary(NamedTuple):
    """An immutable copy: `buckets` holds (upper bound, samples <= bound), cumulative as
    Prometheus wants them; samples past the last bound count only in `count`."""

    count: int
    sum: float
    buckets: tuple[tuple[float, int], ...]


class LatencyHistogram:
    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: past every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def summary(self) -> LatencySummary:
        cumulative, total = [], 0
        for bound, n in zip(self.bounds, self.counts):
            total += n
            cumulative.append((bound, total))
        return LatencySummary(self.count, self.sum, tuple(cumulative))
