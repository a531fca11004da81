"""Events that cross the state machine: ids and statuses only, never graph state."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class StepEvent(BaseModel):
    run_id: str
    thread_id: str
    execution: str | None = None


class ParkEvent(BaseModel):
    run_id: str
    thread_id: str
    task_token: str


class FinishEvent(BaseModel):
    run_id: str
    thread_id: str
    outcome: str | None = None
    error: dict[str, Any] | None = None
