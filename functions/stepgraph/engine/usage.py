"""A Lambda invocation's AWS bill: its own time, the state transitions its place in the state
machine costs, and what its AWS calls used (`billing.meter`), added onto the runs it worked for
with one atomic update per run and invocation.

A retried or duplicated invocation is billed by AWS again, and is counted again: the figures are
what AWS charges for the run, not what the run would need without faults. An invocation that dies
before its end (a timeout, a crash) records nothing, so a run's figures are a lower bound then.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from stepgraph.billing import (
    COST_KEY,
    LAMBDA_GB_SECONDS,
    LAMBDA_INVOCATIONS,
    SCHEDULER_INVOCATIONS,
    TRANSITIONS,
    WRITE_UNITS,
    UnknownRegion,
    Usage,
    metering,
    price_table,
)
from stepgraph.vocabulary import StepOutcome

if TYPE_CHECKING:
    from stepgraph.engine.context import Context

__all__ = [
    "COST_KEY",
    "PARK_TRANSITIONS",
    "Bill",
    "billed_invocation",
    "charge_run",
    "finish_transitions",
    "step_transitions",
]

logger = logging.getLogger(__name__)

# State transitions per invocation, read off statemachine/run.asl.json (a Task state and the
# states it passes before the next Task; the Start choice is counted at StartExecution).
_STEP = 2  # Step, Route
_HANDED_OVER = 1  # HandedOver (the next execution's Start: its StartExecution)
PARK_TRANSITIONS = 2  # Park, then Resume or Abandoned
_FINISH = 2  # Finish, then Done or FinishFailed
_EXPIRE = 3  # Expire, AfterExpire, then ResumeAfterExpire or Done


def step_transitions(outcome: StepOutcome) -> int:
    return _STEP + (_HANDED_OVER if outcome == StepOutcome.HANDOVER else 0)


def finish_transitions(outcome: str | None) -> int:
    return _EXPIRE if outcome == StepOutcome.EXPIRED else _FINISH


class Bill:
    """One invocation of the Lambda function `function`: what it used, and the runs it is for."""

    def __init__(self, function: str, memory_mb: int) -> None:
        self.function, self.memory_mb = function, memory_mb
        self.usage = Usage()
        self.runs: list[tuple[str, str]] = []

    def charge(self, thread_id: str, run_id: str) -> None:
        """Bill this invocation to the run (split evenly if it works for several)."""
        if (thread_id, run_id) not in self.runs:
            self.runs.append((thread_id, run_id))

    def transitions(self, count: int) -> None:
        self.usage.add(TRANSITIONS, count)

    def scheduled(self) -> None:
        """This invocation is an EventBridge Scheduler delivery (a cron's fire), billed per invocation."""
        self.usage.add(SCHEDULER_INVOCATIONS, 1)

    @contextmanager
    def measuring(self) -> Iterator[Bill]:
        """Count the AWS calls made in this context, and its duration as the invocation's."""
        started = time.perf_counter()
        token = _bill.set(self)
        try:
            with metering(self.usage):
                yield self
        finally:
            _bill.reset(token)
            billed_ms = math.ceil((time.perf_counter() - started) * 1000)  # Lambda bills whole ms
            self.usage.add(LAMBDA_INVOCATIONS.format(function=self.function), 1)
            self.usage.add(LAMBDA_GB_SECONDS.format(function=self.function), self.memory_mb / 1024 * billed_ms / 1000)

    def record(self, ctx: Context) -> None:
        """Add the usage onto each run charged, one atomic update each."""
        if not self.runs:
            return  # nothing to charge (a doorbell for a thread with nothing to admit, a read)
        # The usage write itself: one unit for a run item up to 1 KB (a lower bound).
        self.usage.add(WRITE_UNITS, len(self.runs))
        counts = self.usage.counts()
        try:
            counts[COST_KEY] = price_table(ctx.settings.region).cost(counts)
        except UnknownRegion as exc:
            logger.warning("run cost not priced: %s", exc)  # the units are still recorded
        share = {key: amount / len(self.runs) for key, amount in counts.items()}
        for thread_id, run_id in self.runs:
            try:
                if not ctx.runs.add_usage(thread_id, run_id, share):
                    logger.info("usage of %s not recorded: run %s is gone", self.function, run_id)
            except (ClientError, BotoCoreError) as exc:
                # The bill is a report: failing to write it must not fail (and retry) the work it measured.
                logger.warning("usage of %s not recorded on run %s: %s", self.function, run_id, exc)


_bill: ContextVar[Bill | None] = ContextVar("stepgraph_bill", default=None)


def charge_run(thread_id: str, run_id: str) -> None:
    """Bill the invocation in progress, if any, to this run too (an API request that creates it)."""
    bill = _bill.get()
    if bill is not None:
        bill.charge(thread_id, run_id)


@contextmanager
def billed_invocation(ctx: Context, function: str, lambda_context: Any) -> Iterator[Bill]:
    """Meter one invocation of a handler of the Lambda function `function` (step, park, ...),
    then add its usage to the runs it was charged to, whether it returned or raised."""
    bill = Bill(function, int(getattr(lambda_context, "memory_limit_in_mb", 0) or 0))
    try:
        with bill.measuring():
            yield bill
    finally:
        bill.record(ctx)
