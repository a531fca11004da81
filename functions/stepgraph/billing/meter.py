"""What stepgraph's own AWS calls use, counted where they are made: botocore event hooks on the
clients `settings.Clients` builds add each call's units to the `Usage` of the handler invocation
in progress (a context variable, so concurrent local invocations in one process keep apart)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["COST_KEY", "Usage", "current_usage", "instrument", "item_size", "metering"]

# The keys of a run's usage (its `aws_usage`), one price each in the price table.
LAMBDA_INVOCATIONS = "lambda.{function}.invocations"
LAMBDA_GB_SECONDS = "lambda.{function}.gb_seconds"
TRANSITIONS = "stepfunctions.transitions"
READ_UNITS = "dynamodb.read_units"
WRITE_UNITS = "dynamodb.write_units"
SQS_REQUESTS = "sqs.requests"
S3_PUTS = "s3.put_requests"
S3_GETS = "s3.get_requests"
SCHEDULER_INVOCATIONS = "scheduler.invocations"
API_REQUESTS = "apigateway.requests"
# The run's running total in dollars, priced by each invocation with the price table of its
# region as of then (`stepgraph cost` prices the units anew with the current table).
COST_KEY = "cost_usd"

_KB = 1024
_SQS_CHUNK = 64 * _KB
_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# S3's two request tiers; DeleteObject(s) and the rest are free.
_S3_PUT_TIER = frozenset(
    {"PutObject", "CopyObject", "ListObjectsV2", "ListObjects", "CreateMultipartUpload", "UploadPart"}
)
_S3_GET_TIER = frozenset({"GetObject", "HeadObject"})


class Usage:
    """Units used on AWS, by key (the module's constants); safe to add to from many threads (an
    invocation's event-log writer and checkpoint I/O run on threads of their own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, float] = {}

    def add(self, key: str, amount: float = 1) -> None:
        if amount:
            with self._lock:
                self._counts[key] = self._counts.get(key, 0) + amount

    def counts(self) -> dict[str, float]:
        with self._lock:
            return dict(self._counts)


_current: ContextVar[Usage | None] = ContextVar("stepgraph_usage", default=None)


def current_usage() -> Usage | None:
    """The usage of the invocation this call is made for; None outside one (nothing is counted)."""
    return _current.get()


@contextmanager
def metering(usage: Usage | None = None) -> Iterator[Usage]:
    """Count the AWS calls made in this context (and the threads and tasks it starts) into
    `usage` (a new Usage by default)."""
    usage = usage if usage is not None else Usage()
    token = _current.set(usage)
    try:
        yield usage
    finally:
        _current.reset(token)


def instrument(client: Any, *, trust_reported_capacity: bool, delay_state_machine_arn: str = "") -> None:
    """Count `client`'s calls into the current Usage.

    DynamoDB is asked for `ReturnConsumedCapacity=TOTAL` on every call that takes it; AWS's answer
    is used when `trust_reported_capacity` (real AWS, LocalStack), otherwise, and whenever there is
    no answer (a failed conditional write, which AWS still bills), units are estimated from the
    item sizes as DynamoDB computes them. moto answers with fixed figures (0.5 for any GetItem or
    UpdateItem, [] for a transaction), so the local runtime estimates.
    """
    events = client.meta.events
    events.register("provide-client-params.dynamodb", _ask_capacity)
    events.register("provide-client-params", _keep_params)
    counter = _Counter(trust_reported_capacity, delay_state_machine_arn)
    events.register("after-call", counter.after_call)


def _ask_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
    if "ReturnConsumedCapacity" in model.input_shape.members:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["stepgraph_params"] = params


class _Counter:
    def __init__(self, trust_reported_capacity: bool, delay_state_machine_arn: str) -> None:
        self.trust = trust_reported_capacity
        self.delay_arn = delay_state_machine_arn

    def after_call(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        usage = _current.get()
        if usage is None:
            return
        service, operation = model.service_model.endpoint_prefix, model.name
        params: dict[str, Any] = context.get("stepgraph_params") or {}
        if service == "dynamodb":
            self._dynamodb(usage, operation, params, parsed)
        elif service == "sqs":
            usage.add(SQS_REQUESTS, _sqs_requests(operation, params))
        elif service == "s3":
            if operation in _S3_PUT_TIER:
                usage.add(S3_PUTS, 1)
            elif operation in _S3_GET_TIER:
                usage.add(S3_GETS, 1)
        elif service == "states" and operation == "StartExecution":
            if self.delay_arn and params.get("stateMachineArn") == self.delay_arn:
                # statemachine/delay.asl.json: WaitUntilDue, RingDoorbell (an SQS SendMessage).
                usage.add(TRANSITIONS, 2)
                usage.add(SQS_REQUESTS, 1)
            else:
                usage.add(TRANSITIONS, 1)  # statemachine/run.asl.json's Start choice

    def _dynamodb(self, usage: Usage, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        if operation not in _READS and operation not in _WRITES:
            return  # control-plane calls (DescribeTable, ...) are not billed per request
        reported = parsed.get("ConsumedCapacity")
        units = _reported_units(reported) if self.trust and reported else None
        if units is None:
            units = _estimated_units(operation, params, parsed)
        usage.add(READ_UNITS if operation in _READS else WRITE_UNITS, units)


def _reported_units(reported: Any) -> float | None:
    entries = reported if isinstance(reported, list) else [reported]
    total = sum(float(e.get("CapacityUnits", 0)) for e in entries if isinstance(e, Mapping))
    return total or None


def _sqs_requests(operation: str, params: dict[str, Any]) -> int:
    """SQS bills each 64 KB chunk of a request's payload as one request."""
    if operation == "SendMessage":
        return _chunks(len(str(params.get("MessageBody", "")).encode()))
    if operation == "SendMessageBatch":
        return max(1, _chunks(sum(len(str(e.get("MessageBody", "")).encode()) for e in params.get("Entries", []))))
    return 1


def _chunks(size: int) -> int:
    return max(1, math.ceil(size / _SQS_CHUNK))


# --- DynamoDB units from item sizes (the rules of the DynamoDB developer guide) ---------------


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "B":
        return len(v)
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").strip("0")
        return (len(digits) + 1) // 2 + 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: x}) for x in v)
    if kind == "L":
        return 3 + sum(1 + _value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(x) for k, x in v.items())
    return 1  # BOOL, NULL


def item_size(item: Mapping[str, Any] | None) -> int:
    """An item's size in bytes as DynamoDB bills it: each attribute's name and value."""
    return sum(len(name.encode()) + _value_size(value) for name, value in (item or {}).items())


def _write_units(item: Mapping[str, Any] | None) -> int:
    return max(1, math.ceil(item_size(item) / _KB))


def _read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * _KB)))
    return float(units) if consistent else units / 2


def _estimated_units(operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> float:
    consistent = bool(params.get("ConsistentRead"))
    if operation == "PutItem":
        return _write_units(params.get("Item"))
    if operation in ("UpdateItem", "DeleteItem"):
        # The item's size before/after is unknown unless returned: the larger of what we know.
        return max(_write_units(parsed.get("Attributes")), _write_units(params.get("Key")))
    if operation == "GetItem":
        return _read_units(item_size(parsed.get("Item")), consistent)
    if operation in ("Query", "Scan"):
        # One read of the summed size of the items read (for a Query, rounded once).
        return _read_units(sum(item_size(i) for i in parsed.get("Items", [])), consistent)
    if operation == "BatchGetItem":
        responses = parsed.get("Responses", {})
        return sum(_read_units(item_size(i), consistent) for items in responses.values() for i in items)
    if operation == "BatchWriteItem":
        return sum(
            _write_units(r.get("PutRequest", {}).get("Item"))
            for rs in params.get("RequestItems", {}).values()
            for r in rs
        )
    if operation == "TransactWriteItems":
        # Each action of a transaction takes two units per KB.
        return sum(2 * _write_units(action.get("Put", {}).get("Item")) for action in params.get("TransactItems", []))
    if operation == "TransactGetItems":
        return sum(2 * _read_units(item_size(r.get("Item")), True) for r in parsed.get("Responses", []))
    return 0.0
