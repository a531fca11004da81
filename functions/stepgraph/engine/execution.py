"""The one place that calls Step Functions and SQS: a run's execution and its thread's doorbell.

A run executes as a Step Functions execution named after it (starting twice is harmless); a run
that stopped on an interrupt waits in that execution on a task token, and a resume run continues
in it. A long run hands over to a fresh execution of the same state machine (`<run_id>-<n>`)
before the execution's history cap. The run records the execution that carries it (`execution`);
without a record, it is the one named after it. The SQS FIFO queue (one message group per
thread) only rings a doorbell: dispatch then decides what to admit.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from botocore.exceptions import ClientError

from stepgraph import tracing
from stepgraph.settings import Settings
from stepgraph.vocabulary import AwsError, ExecutionStatus, StepOutcome, error_code

__all__ = ["Doorbell", "Executions"]

logger = logging.getLogger(__name__)

_RESUME_OUTPUT_MAX_BYTES = 32_000  # far below Step Functions' 256 KB payload limit


class Executions:
    """The run state machine's executions (and the delay machine's, which ring a doorbell later)."""

    def __init__(self, sfn: Any, settings: Settings):
        self.sfn, self.settings = sfn, settings

    def arn(self, name: str) -> str:
        """The ARN of the run state machine's execution named `name` (a run's first: its id)."""
        return self.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def of_run(self, run: dict[str, Any]) -> str:
        """The execution that carries (or last carried) a run: the one recorded on it, else the
        one named after it."""
        return str(run.get("execution") or self.arn(run["run_id"]))

    def start(self, run: dict[str, Any]) -> None:
        """Start the run's execution. Idempotent: the execution is named after the run and its
        input is the same each time, so a second start is ExecutionAlreadyExists."""
        step = {"status": StepOutcome.PENDING.value, "park_timeout_seconds": 0, "count": 0}
        self._start(self.settings.state_machine_arn, run["run_id"], run, step)

    def hand_over(self, run: dict[str, Any], handover: dict[str, Any]) -> None:
        """Start the fresh execution a long run continues in (`handover`, recorded on the run:
        its ARN, and the status its first state sees). Same state machine as the execution it
        leaves; same name and input each time, so starting it again is harmless."""
        execution: str = handover["execution"]
        state_machine, name = _state_machine_of(execution), execution.rsplit(":", 1)[1]
        step = {"status": handover["status"], "park_timeout_seconds": handover["park_timeout_seconds"], "count": 0}
        self._start(state_machine, name, run, step)

    def _start(self, state_machine: str, name: str, run: dict[str, Any], step: dict[str, Any]) -> None:
        execution_input = {"run_id": run["run_id"], "thread_id": run["thread_id"], "step": step, "error": None}
        start: dict[str, Any] = {"stateMachineArn": state_machine, "name": name, "input": json.dumps(execution_input)}
        header = tracing.xray_header()
        if header:  # the execution's X-Ray segment joins the run's trace (moto accepts and ignores it)
            start["traceHeader"] = header
        try:
            self.sfn.start_execution(**start)
        except ClientError as exc:
            if error_code(exc) != AwsError.EXECUTION_ALREADY_EXISTS:
                raise

    def describe(self, execution: str) -> dict[str, Any] | None:
        """DescribeExecution's answer (status, error, cause...); None if it does not exist."""
        try:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution)
        except ClientError as exc:
            if error_code(exc) != AwsError.EXECUTION_DOES_NOT_EXIST:
                raise
            return None
        return described

    def status(self, execution: str) -> ExecutionStatus | None:
        """The execution's status; None if it does not exist (not started yet)."""
        described = self.describe(execution)
        return ExecutionStatus(described["status"]) if described else None

    def exists(self, execution: str) -> bool:
        return self.status(execution) is not None

    def resume(self, task_token: str, run: dict[str, Any]) -> bool:
        """Continue a parked execution with this run; False if that execution is gone (its token
        spent or timed out): the caller starts a new one.

        The run id is what the state machine uses; the command rides along for the execution
        history when small (the step reads it from the run, never from the payload, and graph
        state never crosses)."""
        try:
            self.sfn.send_task_success(taskToken=task_token, output=_resume_output(run))
        except ClientError as exc:
            logger.info("parked execution gone (%s); starting a new one", error_code(exc))
            return False
        return True

    def abandon(self, task_token: str, cause: str) -> None:
        """End a parked execution through its token: Park's Catch goes to Abandoned. (moto's
        StopExecution cannot reach a task-token wait; SendTaskFailure ends it the same way on AWS.)"""
        try:
            self.sfn.send_task_failure(taskToken=task_token, error="Abandoned", cause=cause)
        except ClientError as exc:
            # Spent, timed out, or its execution is gone: it is not waiting any more, as wanted.
            logger.info("parked execution already over (%s); nothing to abandon", error_code(exc))

    def stop(self, run: dict[str, Any]) -> None:
        """Stop the execution that carries the run. Best effort: a cancelled run's fence already
        keeps it from writing; this saves compute."""
        try:
            self.sfn.stop_execution(executionArn=self.of_run(run), error="Cancelled")
        except Exception:
            # Not started yet or already over; whatever it is, the cancel stands without it (moto
            # even raises AttributeError for an execution that has not begun).
            logger.info("stop_execution for %s did nothing", run["run_id"], exc_info=True)

    def ring_when_due(self, thread_id: str, run_id: str, wait_ms: int) -> None:
        """SQS FIFO has no per-message delay: a small execution (Wait, then SendMessage) rings the
        thread's doorbell when the run is due. One per run (named after it): arming it again
        changes nothing."""
        try:
            self.sfn.start_execution(
                stateMachineArn=self.settings.delay_state_machine_arn,
                name=f"after-{run_id}",
                input=json.dumps({"thread_id": thread_id, "run_id": run_id, "seconds": math.ceil(wait_ms / 1000)}),
            )
        except ClientError as exc:
            if error_code(exc) != AwsError.EXECUTION_ALREADY_EXISTS:
                raise


class Doorbell:
    """Asks dispatch to look at a thread's pending runs (one FIFO message group per thread)."""

    def __init__(self, sqs: Any, settings: Settings):
        self.sqs, self.settings = sqs, settings

    def ring(self, thread_id: str, dedup: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.settings.run_queue_url,
            MessageBody=json.dumps({"thread_id": thread_id}),
            MessageGroupId=thread_id,
            MessageDeduplicationId=dedup,
            MessageAttributes=tracing.message_attributes(),  # dispatch continues the ringer's trace
        )


def _state_machine_of(execution: str) -> str:
    """arn:aws:states:<region>:<account>:execution:<machine>:<name> → the machine's ARN."""
    head, _name = execution.rsplit(":", 1)
    return head.replace(":execution:", ":stateMachine:", 1)


def _resume_output(run: dict[str, Any]) -> str:
    output = {"run_id": run["run_id"]}
    command = (run.get("kwargs") or {}).get("command")
    if command:
        with_command = json.dumps({**output, "command": command}, default=str)
        if len(with_command.encode()) <= _RESUME_OUTPUT_MAX_BYTES:
            return with_command
    return json.dumps(output)
