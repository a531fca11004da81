"""What the benchmarks share: the server launcher the tests use, and one way to summarise samples."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import Server  # the same launcher the tests use

__all__ = ["Server", "summary"]


def summary(samples: list[float], digits: int = 2) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(samples),
        "p50": round(pick(0.5), digits),
        "p95": round(pick(0.95), digits),
        "mean": round(statistics.fmean(samples), digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
    }
