"""DynamoDB's low-level API in the shapes every store uses: attribute values, pages of a Query or
Scan, batched and conditional writes, and why a write or a transaction failed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from botocore.exceptions import ClientError

from stepgraph.vocabulary import AwsError, error_code

__all__ = [
    "Item",
    "batch_write",
    "cancellation_reasons",
    "contended",
    "is_conditional_failure",
    "paginate",
    "s",
    "transact",
    "update_if",
]

Item = dict[str, Any]  # an item (or key) in DynamoDB's typed JSON: {"name": {"S": "..."}, ...}

_BATCH = 25  # BatchWriteItem's maximum
# A concurrent transaction on the same item, or throttling: the same write may succeed if tried again.
_CONTENDED = (AwsError.TRANSACTION_CONFLICT, AwsError.THROTTLED, AwsError.THROUGHPUT_EXCEEDED)


def s(value: str) -> dict[str, str]:
    """A string attribute value."""
    return {"S": value}


def paginate(call: Callable[..., dict[str, Any]], **request: Any) -> Iterator[Item]:
    """The items of a Query or Scan (`call`: the client's `query` or `scan`), fetched page by page
    as the caller consumes them."""
    while True:
        page = call(**request)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_write(client: Any, table: str, requests: Iterable[Item]) -> None:
    """Put and delete requests (`{"PutRequest": ...}`, `{"DeleteRequest": ...}`), 25 a call."""
    requests = iter(requests)
    while chunk := list(islice(requests, _BATCH)):
        pending: dict[str, Any] = {table: chunk}
        for attempt in range(10):
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
            # Unprocessed items are DynamoDB shedding load, not failing: back off, resend those.
            time.sleep(min(0.05 * 2**attempt, 2.0))
        else:
            raise RuntimeError(f"BatchWriteItem still left items unprocessed after retries: {pending}")


def is_conditional_failure(exc: ClientError) -> bool:
    """A write's condition did not hold (or, for a transaction, it was cancelled)."""
    return error_code(exc) in (AwsError.CONDITIONAL_CHECK_FAILED, AwsError.TRANSACTION_CANCELED)


def update_if(client: Any, **update: Any) -> bool:
    """One conditional UpdateItem: False if its condition did not hold."""
    try:
        client.update_item(**update)
    except ClientError as exc:
        if is_conditional_failure(exc):
            return False
        raise
    return True


def cancellation_reasons(exc: ClientError) -> list[str | None] | None:
    """A cancelled transaction's reason codes, one per action in order ("None" for an action that
    was fine); None if `exc` is any other failure."""
    if error_code(exc) != AwsError.TRANSACTION_CANCELED:
        return None
    return [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]


def transact(client: Any, items: Sequence[Item]) -> list[str | None]:
    """Write `items` in one transaction: [] once it committed, else each action's cancellation
    reason code, in order (`cancellation_reasons`). Any other failure raises."""
    try:
        client.transact_write_items(TransactItems=list(items))
    except ClientError as exc:
        codes = cancellation_reasons(exc)
        if codes is None:
            raise
        return codes
    return []


def contended(codes: Sequence[str | None]) -> bool:
    """A transaction was cancelled by a concurrent writer or throttling, not by its conditions."""
    return any(code in _CONTENDED for code in codes)
