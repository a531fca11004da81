"""Continue as new: a long run goes on in a fresh execution before its execution's history cap.

A Standard execution stops at 25,000 history events, and a run in strict mode spends 7 of them
per superstep. The state machine counts what an execution spends (`$.step.count`, run.asl.json:
each Step invocation, each park and resume), and once the count reaches
`Settings.handover_after` the Step, after its supersteps are committed, records the run's next
execution on the run and starts it; the old execution ends in HandedOver, without Finish. The
run keeps its id, its event log and its checkpoints, and the new execution's first Step goes on
from the thread's head: no superstep is lost or repeated. A run stopped on an interrupt parks at
once in its new execution (the machine's Start state).

History events per count, as the emulator records them and AWS documents them:
- a Step and its Route: TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded,
  TaskStateExited, ChoiceStateEntered, ChoiceStateExited: 7;
- a park and its resume (1, the Step after it counts itself): Park's TaskStateEntered,
  TaskScheduled, TaskStarted, TaskSubmitted, TaskSucceeded, TaskStateExited and Resume's
  PassStateEntered, PassStateExited: 8;
- a resume at the human-input deadline (2): Park's 5 (TaskTimedOut), Expire's 5, AfterExpire's 2,
  ResumeAfterExpire's 2: 14;
so at most `EVENTS_PER_COUNT` = 8 per count, plus 3 to begin (ExecutionStarted, Start) and at
most 8 to end (Finish, Done, ExecutionSucceeded). The default 2,000 spends at most 16,011 events
and leaves 8,989 of the 25,000 to retries: a failed Lambda attempt adds 3 (TaskScheduled,
TaskStarted, TaskFailed), so about 3,000 failed attempts fit, 1.5 for every Step.
"""

from __future__ import annotations

import logging
from typing import Any

from stepgraph.engine.context import Context
from stepgraph.vocabulary import StepOutcome

__all__ = ["EVENTS_PER_COUNT", "carried_elsewhere", "hand_over", "handing_over_from", "history_bound"]

logger = logging.getLogger(__name__)

EVENTS_PER_COUNT = 8
_EVENTS_TO_BEGIN_AND_END = 3 + 8


def history_bound(handover_after: int) -> int:
    """The most history events an execution records with this threshold, failed attempts aside."""
    return handover_after * EVENTS_PER_COUNT + _EVENTS_TO_BEGIN_AND_END


def handing_over_from(run: dict[str, Any], execution: str) -> bool:
    """The run's last hand-over left `execution` for the execution the run now records."""
    handover: dict[str, Any] = run.get("handover") or {}
    return bool(handover.get("from") == execution and handover.get("execution") == run.get("execution"))


def carried_elsewhere(ctx: Context, run: dict[str, Any], execution: str) -> bool:
    """True if `execution` no longer carries the run: it handed the run over (a retried Step
    makes sure the next execution runs), or another execution carries it. That execution ends."""
    if handing_over_from(run, execution):
        ctx.executions.hand_over(run, run["handover"])
        return True
    carrier = run.get("execution")
    if carrier is not None and carrier != execution:
        logger.warning("run %s is carried by %s, not by %s: that one ends", run["run_id"], carrier, execution)
        return True
    return False


def hand_over(
    ctx: Context, run: dict[str, Any], execution: str, status: StepOutcome, park_timeout_seconds: int
) -> StepOutcome:
    """Move the run to a fresh execution: record it on the run, then start it. From the record
    on, the old execution's end is not the run's (the reaper, or a retried Step, starts the
    recorded one if need be). `status` (continue or interrupted) is where the new execution
    begins. Returns HANDOVER, or DONE if the run ended meanwhile (a cancel)."""
    number = int((run.get("handover") or {}).get("number", 0)) + 1
    name = f"{run['run_id']}-{number}"  # Step Functions names: at most 80 characters; this is 38+
    handover = {
        "from": execution,
        "execution": f"{execution.rsplit(':', 1)[0]}:{name}",
        "number": number,
        "status": status.value,
        "park_timeout_seconds": park_timeout_seconds,
    }
    if not ctx.runs.hand_over(run["thread_id"], run["run_id"], carrier=execution, handover=handover):
        current = ctx.runs.get(run["thread_id"], run["run_id"]) or {}
        if carried_elsewhere(ctx, current, execution):
            return StepOutcome.HANDOVER
        return StepOutcome.DONE  # cancelled or finished meanwhile: Finish keeps the first word
    ctx.executions.hand_over(run, handover)
    logger.info("run %s goes on in %s", run["run_id"], handover["execution"])
    return StepOutcome.HANDOVER
