"""`stepgraph aws` with DynamoDB throttling that a test can switch on (test-only launcher).

The emulated DynamoDB, not our code, answers ProvisionedThroughputExceededException: the
workers' botocore sees a real throttling response and applies its own retry policy.
The rule lives in the JSON file named by STEPGRAPH_TEST_FAULTS (re-read when it changes):
    {"operation": "TransactWriteItems", "table": "CheckpointsTable", "count": 3, "every": 2}
throttles every 2nd matching request until 3 were throttled; how many were is written to the
file's ".out" sibling.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from unittest import mock

from moto.core.common_types import TYPE_RESPONSE
from moto.dynamodb.responses import DynamoHandler

RULES = Path(os.environ["STEPGRAPH_TEST_FAULTS"])
_lock = threading.Lock()
_state: dict = {"mtime": None, "rule": None, "seen": 0, "injected": 0}


def _rule() -> dict | None:
    try:
        mtime = RULES.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    if mtime != _state["mtime"]:
        _state.update(mtime=mtime, rule=json.loads(RULES.read_text() or "null"), seen=0, injected=0)
    return _state["rule"]


def _throttle(handler: DynamoHandler) -> bool:
    with _lock:
        rule = _rule()
        if not rule or handler.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1] != rule["operation"]:
            return False
        body = json.loads(handler.body or "{}")
        tables = {op.get("TableName") for item in body.get("TransactItems", []) for op in item.values()}
        if rule["table"] not in tables | {body.get("TableName")}:
            return False
        _state["seen"] += 1
        if _state["injected"] >= rule["count"] or _state["seen"] % rule.get("every", 1):
            return False
        _state["injected"] += 1
        RULES.with_suffix(".out").write_text(json.dumps({"injected": _state["injected"]}))
        return True


_original = DynamoHandler.call_action


def _call_action(self: DynamoHandler) -> TYPE_RESPONSE:
    if _throttle(self):
        body = {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded (injected).",
        }
        return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body)
    return _original(self)


# For the life of this process: every DynamoDB request passes the throttle first.
mock.patch.object(DynamoHandler, "call_action", _call_action).start()

if __name__ == "__main__":
    from stepgraph_local.cli import main

    sys.exit(main())
