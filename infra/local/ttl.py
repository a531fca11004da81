"""DynamoDB TTL for the local runtime: moto stores a table's TTL setting but never deletes.

A sweeper thread deletes the items whose TTL attribute lies in the past from every table with
TTL enabled (template.yaml: the stream event log), as DynamoDB does in the background. Readers
never depend on it: DynamoDB deletes expired items lazily (up to days later), so `EventLog.read`
already skips them. The sweeper keeps the emulated tables from growing without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

logger = logging.getLogger("stepgraph.local")


class TtlSweeper(threading.Thread):
    def __init__(self, dynamodb: Any, *, interval: float = 60.0):
        super().__init__(name="ttl-sweeper", daemon=True)
        self.dynamodb, self.interval = dynamodb, interval
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sweep_once()
            except Exception:  # the next sweep tries again
                logger.exception("TTL sweep failed")

    def ttl_tables(self) -> dict[str, str]:
        """Table name → TTL attribute, for every table with TTL enabled."""
        tables: dict[str, str] = {}
        for page in self.dynamodb.get_paginator("list_tables").paginate():
            for name in page["TableNames"]:
                spec = self.dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
                if spec.get("TimeToLiveStatus") == "ENABLED" and spec.get("AttributeName"):
                    tables[name] = spec["AttributeName"]
        return tables

    def sweep_once(self, now: float | None = None) -> int:
        """Delete every expired item now; returns how many."""
        now_s = str(int(now if now is not None else time.time()))
        deleted = 0
        for table, attribute in self.ttl_tables().items():
            keys = [a["AttributeName"] for a in self.dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]]
            kwargs: dict[str, Any] = {
                "TableName": table,
                "FilterExpression": "#ttl < :now",
                "ExpressionAttributeNames": {"#ttl": attribute, **{f"#k{i}": k for i, k in enumerate(keys)}},
                "ExpressionAttributeValues": {":now": {"N": now_s}},
                "ProjectionExpression": ", ".join(f"#k{i}" for i in range(len(keys))),
            }
            while True:
                page = self.dynamodb.scan(**kwargs)
                items = page.get("Items", [])
                for i in range(0, len(items), 25):
                    requests = [{"DeleteRequest": {"Key": item}} for item in items[i : i + 25]]
                    self.dynamodb.batch_write_item(RequestItems={table: requests})
                deleted += len(items)
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return deleted
