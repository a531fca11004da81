"""Request bodies, validated the way the peer validates them (unknown keys pass through)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

StreamMode = Literal[
    "values", "updates", "messages", "messages-tuple", "events", "debug", "custom", "checkpoints", "tasks"
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class AssistantCreate(_Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(_Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class Search(_Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None


class AssistantSearch(Search):
    graph_id: str | None = None
    name: str | None = None


class ThreadCreate(_Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadPatch(_Body):
    metadata: dict[str, Any] | None = None


class ThreadSearch(Search):
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    values: dict[str, Any] | None = None


class HistoryRequest(_Body):
    limit: int = Field(10, ge=1, le=1000)
    before: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


class StateUpdate(_Body):
    values: Any = None
    as_node: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None


class CheckpointRequest(_Body):
    checkpoint: dict[str, Any]
    subgraphs: bool = False


class CommandBody(_Body):
    resume: Any = None
    update: Any = None
    goto: Any = None


class InterruptDeadline(_Body):
    """stepgraph's extension: what happens when a parked run's human-input deadline passes."""

    action: Literal["resume", "end"] = "end"
    value: Any = None  # the resume value for action "resume"


class RunCreate(_Body):
    assistant_id: str
    input: Any = None
    command: CommandBody | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"
    if_not_exists: Literal["reject", "create"] = "reject"
    on_disconnect: Literal["continue", "cancel"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    after_seconds: float | None = Field(None, ge=0)
    durability: Literal["sync", "async", "exit"] | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    interrupt_deadline_seconds: int | None = Field(None, ge=1)
    on_interrupt_deadline: InterruptDeadline | None = None

    @field_validator("stream_mode", mode="after")
    @classmethod
    def _as_list(cls, value: Any) -> list[str]:
        return [value] if isinstance(value, str) else list(value)


class ThreadPrune(_Body):
    thread_ids: list[str] = Field(max_length=1000)
    strategy: Literal["delete", "keep_latest"] = "delete"


class RunsCancel(_Body):
    """Bulk cancel: the named runs of one thread, or every run with a status."""

    thread_id: str | None = None
    run_ids: list[str] | None = Field(None, max_length=1000)
    status: Literal["pending", "running", "all"] | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> "RunsCancel":
        by_ids = self.thread_id is not None or self.run_ids is not None
        if by_ids == (self.status is not None) or (by_ids and not (self.thread_id and self.run_ids)):
            raise ValueError("Provide either thread_id and run_ids, or status")
        return self


class AssistantLatest(_Body):
    version: int = Field(ge=1)


class ProtocolCommand(_Body):
    """A thread-centric streaming command (`POST /threads/{t}/commands`)."""

    id: int = Field(ge=0)
    method: str
    params: dict[str, Any] = Field(default_factory=dict)


class EventStreamRequest(_Body):
    """The filter of a thread-centric event stream (`POST /threads/{t}/stream/events`)."""

    channels: list[str] = Field(min_length=1)
    namespaces: list[list[str]] | None = None
    depth: int | None = Field(None, ge=0)
    since: int | None = Field(None, ge=0)
