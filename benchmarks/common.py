"""What the benchmarks share: the server launcher the tests use, and one way to summarise samples."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import Server  # noqa: F401  (the same launcher the tests use)


def summary(samples: list[float], digits: int = 2) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
    return {
        "n": len(samples),
        "p50": round(pick(0.5), digits),
        "p95": round(pick(0.95), digits),
        "mean": round(statistics.fmean(samples), digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
    }
