"""Request bodies, validated the way the peer validates them (unknown keys pass through)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stepgraph.vocabulary import ThreadStatus

StreamMode = Literal[
    "values", "updates", "messages", "messages-tuple", "events", "debug", "custom", "checkpoints", "tasks"
]

# JSON nested deeper than this is refused (422): stored documents and checkpoints are encoded by
# orjson and msgpack, which stop at 255 levels, so a deeper body would fail after validation.
MAX_JSON_DEPTH = 100
# The longest a run may be delayed or park for input: a Step Functions execution lives a year.
MAX_DELAY_SECONDS = 365 * 24 * 3600
_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson (the store's encoder, the peer's parser) reads


def check_json(value: Any) -> None:
    """Refuse (ValueError) what Python's json module accepts but the stores cannot encode and the
    peer's parser (orjson) rejects: nesting deeper than MAX_JSON_DEPTH, integers beyond 64 bits,
    NaN and Infinity, strings with unpaired surrogates. Iterative: depth cannot overflow it."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            try:
                node.encode()
            except UnicodeEncodeError:
                raise ValueError("Invalid JSON in request body: a string holds an unpaired surrogate") from None
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if not _INT_RANGE[0] <= node <= _INT_RANGE[1]:
                raise ValueError("Invalid JSON in request body: an integer exceeds 64 bits")
        elif isinstance(node, float):
            if node != node or node in (float("inf"), float("-inf")):
                raise ValueError("Invalid JSON in request body: NaN and Infinity are not JSON numbers")
        elif isinstance(node, (dict, list)):
            if depth == MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(node, dict):
                stack.extend((key, depth + 1) for key in node)
                node = node.values()
            stack.extend((child, depth + 1) for child in node)


def check_checkpoint_id(value: str | None) -> str | None:
    if value is not None:
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError("Invalid checkpoint ID: must be a UUID") from None
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_json(data)
        return data


class RunnableConfig(_Body):
    """The keys of a run's `config` that the engine reads; anything else passes through."""

    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    configurable: dict[str, Any] | None = None
    recursion_limit: int | None = Field(None, ge=1)
    max_concurrency: int | None = Field(None, ge=1)
    run_name: str | None = None


def check_config(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A config the step can use, still a plain dict: a malformed one is refused here (422)
    rather than failing the run's step on every retry."""
    return None if value is None else RunnableConfig.model_validate(value).model_dump(exclude_unset=True)


class CheckpointRef(_Body):
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None

    _id = field_validator("checkpoint_id")(check_checkpoint_id)


def check_checkpoint(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else CheckpointRef.model_validate(value).model_dump(exclude_unset=True)


class AssistantCreate(_Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None

    _config = field_validator("config")(check_config)


class AssistantPatch(_Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None

    _config = field_validator("config")(check_config)


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
    status: ThreadStatus | None = None
    values: dict[str, Any] | None = None


class HistoryRequest(_Body):
    limit: int = Field(10, ge=1, le=1000)
    before: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None

    _checkpoint = field_validator("checkpoint")(check_checkpoint)

    @field_validator("before")
    @classmethod
    def _before(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(value, str):
            return check_checkpoint_id(value)
        if isinstance(value, dict) and isinstance(value.get("configurable"), dict):
            return {**value, "configurable": check_checkpoint(value["configurable"])}
        return check_checkpoint(value)


class StateUpdate(_Body):
    values: Any = None
    as_node: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None

    _checkpoint = field_validator("checkpoint")(check_checkpoint)
    _checkpoint_id = field_validator("checkpoint_id")(check_checkpoint_id)


class CheckpointRequest(_Body):
    checkpoint: dict[str, Any]
    subgraphs: bool = False

    _checkpoint = field_validator("checkpoint")(check_checkpoint)


class SendBody(_Body):
    """A `Send` in a command's goto: run `node` with `input`."""

    node: str
    input: Any = None


class CommandBody(_Body):
    resume: Any = None
    update: dict[str, Any] | list[tuple[str, Any]] | None = None
    goto: str | SendBody | list[str | SendBody] | None = None


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
    # A list already: the `_as_list` validator below does not run on a default.
    stream_mode: StreamMode | list[StreamMode] = Field(default_factory=lambda: list[StreamMode](["values"]))
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"
    if_not_exists: Literal["reject", "create"] = "reject"
    on_disconnect: Literal["continue", "cancel"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    after_seconds: float | None = Field(None, ge=0, le=MAX_DELAY_SECONDS, allow_inf_nan=False)
    durability: Literal["sync", "async", "exit"] | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    interrupt_deadline_seconds: int | None = Field(None, ge=1, le=MAX_DELAY_SECONDS)
    on_interrupt_deadline: InterruptDeadline | None = None

    _config = field_validator("config")(check_config)
    _checkpoint = field_validator("checkpoint")(check_checkpoint)
    _checkpoint_id = field_validator("checkpoint_id")(check_checkpoint_id)

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
    def _one_selection(self) -> RunsCancel:
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
