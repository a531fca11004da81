"""One word for one thing: the statuses, outcomes and AWS error codes every layer speaks.

Members are `StrEnum`s, so they equal, serialise and store as the plain strings of the wire
format, DynamoDB items and the state machine's ASL.
"""

from __future__ import annotations

from enum import StrEnum

from botocore.exceptions import ClientError

__all__ = [
    "DEAD_EXECUTION",
    "INFLIGHT",
    "AwsError",
    "DoubleText",
    "ExecutionStatus",
    "RunStatus",
    "StepOutcome",
    "ThreadStatus",
    "WebhookDelivery",
    "WebhookStatus",
    "error_code",
]


class RunStatus(StrEnum):
    """A run's status, as the peer reports it."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"  # also a run that stopped on an interrupt
    ERROR = "error"
    TIMEOUT = "timeout"  # parked past its human-input deadline with action "end"
    INTERRUPTED = "interrupted"  # cancelled


# A run in flight: queued or executing. Only these can be cancelled or hold a thread.
INFLIGHT: tuple[RunStatus, ...] = (RunStatus.PENDING, RunStatus.RUNNING)


class WebhookStatus(StrEnum):
    """The `status` a run's webhook reports: the run's final status, or `rollback` (the run and
    what it wrote are gone), as the peer sends it."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    ROLLBACK = "rollback"


class WebhookDelivery(StrEnum):
    """What one attempt at delivering a webhook came to."""

    DELIVERED = "delivered"  # the receiver answered 2xx
    RETRY = "retry"  # network error, timeout, 5xx or 429: the message comes back after its backoff
    DEAD = "dead"  # refused (another 4xx, a redirect) or out of time: in the dead-letter queue


class ThreadStatus(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"  # the graph waits on an interrupt or an interrupt_before/after
    ERROR = "error"


class StepOutcome(StrEnum):
    """Where a run's execution stands, as `run.asl.json` carries it in `$.step.status`: what the
    last Step invocation returned, or how the execution entered its first Step."""

    PENDING = "pending"  # a new execution's input: no step ran yet
    RESUMED = "resumed"  # a parked execution continues with a resume run
    CONTINUE = "continue"  # more supersteps: invoke Step again
    INTERRUPTED = "interrupted"  # park on a task token until a resume
    DONE = "done"
    ERROR = "error"
    EXPIRED = "expired"  # Park timed out: the human-input deadline passed (Finish only)
    HANDOVER = "handover"  # the run goes on in a fresh execution (continue as new): this one ends


class ExecutionStatus(StrEnum):
    """A Step Functions execution's status (DescribeExecution, and the EventBridge events of
    its status changes)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"  # a failed execution being redriven (by hand: stepgraph never does)


# An execution that ended without its run's Finish: nothing will finish the run but the reaper.
DEAD_EXECUTION: tuple[ExecutionStatus, ...] = (
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMED_OUT,
    ExecutionStatus.ABORTED,
)


class DoubleText(StrEnum):
    """A new run's multitask strategy on a busy thread; interrupt and rollback cancel with it."""

    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


class AwsError(StrEnum):
    """The AWS error codes stepgraph decides on; read them with `error_code`."""

    CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"
    TRANSACTION_CANCELED = "TransactionCanceledException"
    # A cancelled transaction's per-action reasons (`CancellationReasons[].Code`):
    CONDITION_FAILED = "ConditionalCheckFailed"
    TRANSACTION_CONFLICT = "TransactionConflict"  # a concurrent transaction on the same item
    THROTTLED = "ThrottlingError"
    THROUGHPUT_EXCEEDED = "ProvisionedThroughputExceeded"
    EXECUTION_ALREADY_EXISTS = "ExecutionAlreadyExists"
    EXECUTION_DOES_NOT_EXIST = "ExecutionDoesNotExist"
    NO_SUCH_KEY = "NoSuchKey"
    RESOURCE_NOT_FOUND = "ResourceNotFoundException"  # EventBridge Scheduler: no such schedule


def error_code(exc: ClientError) -> str:
    """The error code of an AWS call that failed ("" if the response carries none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
