"""What a run's usage costs: a dated price table per region (`prices/<region>.json`), each price
with its source, so updating one is editing a number and a date."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["PriceTable", "UnknownRegion", "price_table"]

_PRICES = Path(__file__).with_name("prices")


class UnknownRegion(LookupError):
    """No price table for the region."""


@dataclass(frozen=True)
class PriceTable:
    region: str
    as_of: str
    prices: Mapping[str, Mapping[str, Any]]

    @staticmethod
    def price_key(usage_key: str) -> str:
        """The price of a usage key: per-function Lambda keys (`lambda.step.gb_seconds`) share one."""
        parts = usage_key.split(".")
        return f"lambda.{parts[-1]}" if parts[0] == "lambda" and len(parts) == 3 else usage_key

    def line_items(self, usage: Mapping[str, float]) -> dict[str, float]:
        """Dollars per usage key (keys without a price are left out)."""
        items = {}
        for key, amount in usage.items():
            price = self.prices.get(self.price_key(key))
            if price is not None:
                items[key] = amount * float(price["usd"])
        return items

    def cost(self, usage: Mapping[str, float]) -> float:
        return sum(self.line_items(usage).values())


@cache
def price_table(region: str) -> PriceTable:
    path = _PRICES / f"{region}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in _PRICES.glob("*.json")))
        raise UnknownRegion(f"no price table for {region} (have: {known}); add {path.name} beside {_PRICES}")
    data = json.loads(path.read_text())
    return PriceTable(region=data["region"], as_of=data["as_of"], prices=data["prices"])
