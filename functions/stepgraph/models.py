"""Events the handlers receive: the state machine's (ids and statuses only, never graph state)
and EventBridge's."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, Field, field_validator

from stepgraph.vocabulary import ExecutionStatus


class StepEvent(BaseModel):
    run_id: str
    thread_id: str
    execution: str | None = None  # the execution invoking the Step ($$.Execution.Id)
    count: int = 0  # that execution's history budget spent so far ($.step.count)


class ParkEvent(BaseModel):
    run_id: str
    thread_id: str
    task_token: str


class FinishEvent(BaseModel):
    run_id: str
    thread_id: str
    outcome: str | None = None
    error: dict[str, Any] | None = None
    execution: str | None = None  # Expire's: the execution a deadline resume continues


class RunExecutionInput(BaseModel):
    """The run state machine's execution input, as far as the reaper reads it."""

    run_id: str
    thread_id: str


class ExecutionStatusDetail(BaseModel):
    """`detail` of a "Step Functions Execution Status Change" event."""

    execution_arn: str = Field(alias="executionArn")
    state_machine_arn: str = Field(alias="stateMachineArn")
    name: str
    status: ExecutionStatus
    input: RunExecutionInput  # a JSON string in the event; ours is a few hundred bytes, always included
    error: str | None = None
    cause: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _parse_input(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class ExecutionStatusChange(EventBridgeModel):
    """What EventBridge delivers when an execution of the run state machine changes status."""

    detail: ExecutionStatusDetail


class CronFireEvent(BaseModel):
    """What a cron's schedule delivers (its target's Input): the cron and the fire time it was
    armed for, so each delivery of one fire names the same fire."""

    cron_id: str
    fire_at: str
