"""A2A's task operations over stepgraph's runs, as `a2a-sdk`'s `RequestHandler`.

A context is a thread; a task is the run a message started, continued by the resume runs of its
interrupts (each a `Command(resume=...)` run on the same thread, which the engine hands to the
parked Step Functions execution through its task token). Tasks are not stored anywhere: each is
read back from the runs table, the thread and its checkpoint, so any API instance (any Lambda)
answers for any task. A task's id is `{thread_id}:{run_id}` of the run that started it, as the peer
names them; its resume runs carry that id in their metadata (`a2a_task_id`).
"""

from __future__ import annotations

import base64
import functools
import inspect
import logging
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from a2a.helpers.proto_helpers import get_data_parts, new_data_part
from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import RequestHandler
from a2a.types import (
    AgentCard,
    Artifact,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    InvalidParamsError,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    PushNotificationNotSupportedError,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE, MAX_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import A2AError, ExtendedAgentCardNotConfiguredError, InternalError
from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from stepgraph import serde
from stepgraph.api.auth import access_of
from stepgraph.api.common import ctx_of
from stepgraph.api.runs import create_run, wait_for_end
from stepgraph.api.schemas import RunCreate
from stepgraph.api.sse import tail
from stepgraph.client_errors import internal_error
from stepgraph.engine import (
    ConfigError,
    Context,
    DocumentTooLarge,
    cancel_run,
    get_thread_state,
    matches_filter,
)
from stepgraph.engine import Event as StoredEvent
from stepgraph.vocabulary import INFLIGHT, RunStatus

__all__ = ["TASK_METADATA_KEY", "RunTasks"]

logger = logging.getLogger(__name__)

# A resume run's metadata key naming the task (its first run) it continues.
TASK_METADATA_KEY = "a2a_task_id"
RESPONSE_ARTIFACT = "Assistant Response"
INTERRUPT_ARTIFACT = "Interrupt"
_BY_STATUS = {
    RunStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    RunStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    RunStatus.SUCCESS: TaskState.TASK_STATE_COMPLETED,
    RunStatus.ERROR: TaskState.TASK_STATE_FAILED,
    RunStatus.TIMEOUT: TaskState.TASK_STATE_FAILED,
    RunStatus.INTERRUPTED: TaskState.TASK_STATE_CANCELED,
}


def _hide_internal_errors(method: Any) -> Any:
    """An unexpected error is logged here and answered as A2A's internal error without its text
    (the SDK would send `str(exc)`: a table name, an AWS message), with the id of its log line:
    as the API's 500s are (stepgraph.client_errors)."""

    def hidden(exc: Exception) -> A2AError:
        return InternalError(internal_error(exc, f"A2A {method.__name__}"))

    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(*args: Any, **kwargs: Any) -> AsyncGenerator[Event]:
            try:
                async for event in method(*args, **kwargs):
                    yield event
            except (A2AError, StarletteHTTPException):
                raise
            except Exception as exc:
                raise hidden(exc) from exc

        return stream

    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except (A2AError, StarletteHTTPException):
            raise
        except Exception as exc:
            raise hidden(exc) from exc

    return call


class RunTasks(RequestHandler):
    """Every A2A method of one assistant's endpoint, answered from runs. The ServerCallContext
    carries the HTTP request (`state["request"]`, authentication done) and the resolved assistant
    (`state["assistant"]`): see `stepgraph.api.a2a`."""

    # ---------------------------------------------------------------- messages
    @_hide_internal_errors
    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
        request, assistant = _request(context), context.state["assistant"]
        task_id, run = await run_in_threadpool(_start, request, assistant, params.message)
        if params.configuration.return_immediately:
            return _submitted(task_id, run, params.message)
        await wait_for_end(ctx_of(request), run)
        return await run_in_threadpool(_task, ctx_of(request), task_id, params.message)

    @_hide_internal_errors
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        request, assistant = _request(context), context.state["assistant"]
        task_id, run = await run_in_threadpool(_start, request, assistant, params.message)
        yield _submitted(task_id, run, params.message)
        async for event in _follow(ctx_of(request), task_id, run):
            yield event

    @_hide_internal_errors
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        request = _request(context)
        ref = await run_in_threadpool(_load_task, request, context.state["assistant"], params.id)
        yield await run_in_threadpool(_task, ctx_of(request), params.id)
        async for event in _follow(ctx_of(request), params.id, ref.latest, announce=False):
            yield event

    # ---------------------------------------------------------------- tasks
    @_hide_internal_errors
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        request = _request(context)
        await run_in_threadpool(_load_task, request, context.state["assistant"], params.id)
        return await run_in_threadpool(_task, ctx_of(request), params.id)

    @_hide_internal_errors
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task | None:
        request = _request(context)
        ref = await run_in_threadpool(_load_task, request, context.state["assistant"], params.id, "update")
        ctx = ctx_of(request)
        if ref.latest["status"] not in INFLIGHT:
            state = (await run_in_threadpool(_task, ctx, params.id)).status.state
            raise TaskNotCancelableError(f"Task {params.id} is {TaskState.Name(state)}: only a task in flight is")
        await run_in_threadpool(cancel_run, ctx, ref.latest, "interrupt")
        return await run_in_threadpool(_task, ctx, params.id)

    @_hide_internal_errors
    async def on_list_tasks(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        request = _request(context)
        return await run_in_threadpool(_list_tasks, request, context.state["assistant"], params)

    # ---------------------------------------------------------------- not served
    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError


def _request(context: ServerCallContext) -> Request:
    request: Request = context.state["request"]
    return request


class _TaskRef:
    """A task's runs: the one that started it (`root`) and the newest (`latest`)."""

    def __init__(self, thread: dict[str, Any], root: dict[str, Any], latest: dict[str, Any]) -> None:
        self.thread, self.root, self.latest = thread, root, latest


def _split(task_id: str) -> tuple[str, str]:
    thread_id, _, run_id = task_id.partition(":")
    try:
        uuid.UUID(thread_id)
        uuid.UUID(run_id)
    except ValueError:
        raise TaskNotFoundError(f"Task {task_id} not found") from None
    return thread_id, run_id


def _of_task(runs: list[dict[str, Any]], thread_id: str, root_id: str) -> list[dict[str, Any]]:
    """The task's runs among a thread's (newest first, as they are listed)."""
    return [
        r
        for r in runs
        if r["run_id"] == root_id or (r.get("metadata") or {}).get(TASK_METADATA_KEY) == f"{thread_id}:{root_id}"
    ]


def _load_task(request: Request, assistant: dict[str, Any], task_id: str, verb: str = "read") -> _TaskRef:
    """The task, once the user may `verb` its thread (`threads.<verb>`); a task the user's filter
    hides, or another assistant's, is not found. In a worker thread."""
    ctx = ctx_of(request)
    thread_id, run_id = _split(task_id)
    try:
        filters = access_of(request).authorize("threads", verb, {"thread_id": thread_id, "run_id": run_id})
    except HTTPException as exc:
        if exc.status_code == 404:
            raise TaskNotFoundError(f"Task {task_id} not found") from None
        raise
    thread = ctx.threads.get(thread_id)
    if thread is None or not matches_filter(thread.get("metadata"), filters):
        raise TaskNotFoundError(f"Task {task_id} not found")
    runs = _of_task(ctx.runs.list(thread_id), thread_id, run_id)
    root = next((r for r in runs if r["run_id"] == run_id), None)
    if root is None or root["assistant_id"] != assistant["assistant_id"]:
        raise TaskNotFoundError(f"Task {task_id} not found")
    return _TaskRef(thread, root, runs[0])


# ---------------------------------------------------------------- a message becomes a run
def _start(request: Request, assistant: dict[str, Any], message: Message) -> tuple[str, dict[str, Any]]:
    """The run a message makes: a resume of its task (or of its context's interrupt), else a new
    task on its context (a new thread without one). Returns the task id and the run."""
    ctx = ctx_of(request)
    access = access_of(request)
    if not message.parts:
        raise InvalidParamsError("A message needs at least one part")
    parked: _TaskRef | None = None
    if message.task_id:
        parked = _load_task(request, assistant, message.task_id)
        if message.context_id and message.context_id != parked.thread["thread_id"]:
            raise InvalidParamsError(f"Task {message.task_id} is not in context {message.context_id}")
        if not _waits_for_input(parked):
            raise InvalidParamsError(
                f"Task {message.task_id} does not wait for input: send a message without taskId for a new task"
            )
        thread_id = parked.thread["thread_id"]
    else:
        thread_id = message.context_id or str(uuid.uuid4())
        try:
            uuid.UUID(thread_id)
        except ValueError:
            raise InvalidParamsError(f"contextId must be a UUID (a thread id): {thread_id!r}") from None
        parked = _parked_task(ctx, thread_id, assistant)
    if parked is not None:
        task_id = f"{thread_id}:{parked.root['run_id']}"
        body = {
            "assistant_id": assistant["assistant_id"],
            "command": {"resume": _resume_value(message)},
            "metadata": {TASK_METADATA_KEY: task_id},
            # Two answers at once: the thread's conditional insert admits one, refuses the other.
            "multitask_strategy": "reject",
        }
        run = _create(ctx, thread_id, body, access)
        return task_id, run
    body = {
        "assistant_id": assistant["assistant_id"],
        "input": _graph_input(ctx, assistant["graph_id"], message),
        "if_not_exists": "create",
    }
    run = _create(ctx, thread_id, body, access)
    return f"{thread_id}:{run['run_id']}", run


def _create(ctx: Context, thread_id: str, body: dict[str, Any], access: Any) -> dict[str, Any]:
    """The run `body` describes (a runs API body), through the runs API's own checks and
    `create_run`; a refusal is A2A's invalid params (authorization's stay HTTP errors)."""
    try:
        return create_run(ctx, thread_id, RunCreate.model_validate(body), access=access)
    except ValidationError as exc:
        raise InvalidParamsError(f"The message does not make a valid run: {exc.errors()[0].get('msg')}") from None
    except HTTPException as exc:
        if exc.status_code in (401, 403):
            raise
        raise InvalidParamsError(str(exc.detail)) from None
    except (DocumentTooLarge, ConfigError) as exc:
        raise InvalidParamsError(str(exc)) from None


def _waits_for_input(ref: _TaskRef) -> bool:
    return bool(ref.latest["status"] == RunStatus.SUCCESS and ref.thread.get("parked_run_id") == ref.latest["run_id"])


def _parked_task(ctx: Context, thread_id: str, assistant: dict[str, Any]) -> _TaskRef | None:
    """The task parked on an interrupt in this context (as the peer, a message to an interrupted
    thread answers its interrupt), if it is this assistant's."""
    thread = ctx.threads.get(thread_id)
    parked_id = (thread or {}).get("parked_run_id")
    if thread is None or not parked_id:
        return None
    parked = ctx.runs.get(thread_id, parked_id)
    if parked is None or parked["assistant_id"] != assistant["assistant_id"]:
        return None
    root_id = str((parked.get("metadata") or {}).get(TASK_METADATA_KEY, f"{thread_id}:{parked_id}")).partition(":")[2]
    root = parked if root_id == parked_id else ctx.runs.get(thread_id, root_id)
    return _TaskRef(thread, root or parked, parked)


def _plain(value: Any) -> Any:
    """A protobuf Value's JSON with whole numbers as ints (protobuf stores every number as a double;
    the graph gets what a JSON client sent)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _data(part: Part) -> Any:
    [data] = get_data_parts([part])
    return _plain(data)


def _content_block(part: Part) -> dict[str, Any]:
    """A file part as a LangChain content block (an image or a file, by URL or base64)."""
    kind = "image" if part.media_type.startswith("image/") else "file"
    block: dict[str, Any] = {"type": kind}
    if part.HasField("url"):
        block["url"] = part.url
    else:
        block["base64"] = base64.b64encode(part.raw).decode()
    if part.media_type:
        block["mime_type"] = part.media_type
    if part.filename:
        block["filename"] = part.filename
    return block


def _graph_input(ctx: Context, graph_id: str, message: Message) -> dict[str, Any]:
    """The peer's mapping: data parts merge into the input; text and file parts become one human
    message in `messages`, which the graph's input must have."""
    values: dict[str, Any] = {}
    blocks: list[dict[str, Any]] = []
    for part in message.parts:
        if part.HasField("data"):
            data = _data(part)
            if not isinstance(data, dict):
                raise InvalidParamsError("A data part of a new task must be an object: it is merged into the input")
            values.update(data)
        elif part.HasField("text"):
            blocks.append({"type": "text", "text": part.text})
        elif part.HasField("url") or part.HasField("raw"):
            blocks.append(_content_block(part))
    if blocks:
        if not _takes_messages(ctx, graph_id):
            raise InvalidParamsError(
                f"Graph {graph_id!r} takes no 'messages' in its input: send a data part with its input instead"
            )
        only_text = len(blocks) == 1 and blocks[0]["type"] == "text"
        content: Any = blocks[0]["text"] if only_text else blocks
        human = {"role": "human", "content": content, "id": message.message_id or str(uuid.uuid4())}
        values["messages"] = [*values.get("messages", []), human]
    return values


def _takes_messages(ctx: Context, graph_id: str) -> bool:
    try:
        schema = ctx.graphs.get(graph_id).get_input_jsonschema()
    except Exception as exc:  # noqa: BLE001 - a user type pydantic cannot describe: let the run decide
        logger.info("graph %r has no input schema (%s): its messages are not checked", graph_id, exc)
        return True
    return "messages" in (schema.get("properties") or {})


def _resume_value(message: Message) -> Any:
    """What answers the interrupt: the data of a lone data part, else the text of the message."""
    data = [_data(p) for p in message.parts if p.HasField("data")]
    texts = [p.text for p in message.parts if p.HasField("text")]
    if (data and texts) or len(data) > 1:
        raise InvalidParamsError("An answer to an interrupt is one data part or text")
    return data[0] if data else "\n".join(texts)


# ---------------------------------------------------------------- a run read back as a task
def _timestamp(run: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(run.get("updated_at")))
    except ValueError:
        return datetime.now(UTC)


def _submitted(task_id: str, run: dict[str, Any], message: Message) -> Task:
    history = Message()
    history.CopyFrom(message)
    history.task_id, history.context_id = task_id, run["thread_id"]
    status = TaskStatus(state=TaskState.TASK_STATE_SUBMITTED, timestamp=_timestamp(run))
    return Task(id=task_id, context_id=run["thread_id"], status=status, history=[history])


def _agent_message(task_id: str, context_id: str, parts: list[Part]) -> Message:
    return Message(
        message_id=str(uuid.uuid4()), task_id=task_id, context_id=context_id, role=Role.ROLE_AGENT, parts=parts
    )


def _data_part(value: Any) -> Part:
    return new_data_part(serde.to_jsonable(value))


def _task(ctx: Context, task_id: str, message: Message | None = None) -> Task:
    """The task as it stands: the status of its newest run and, once that run ended, its
    artifact (the last AI message, else the values) or the interrupts it waits on."""
    thread_id, root_id = _split(task_id)
    on_thread = ctx.runs.list(thread_id)
    runs = _of_task(on_thread, thread_id, root_id)
    if not runs:
        raise TaskNotFoundError(f"Task {task_id} not found")
    latest = runs[0]
    thread = ctx.threads.get(thread_id) or {}
    state = _BY_STATUS.get(latest["status"], TaskState.TASK_STATE_UNSPECIFIED)
    artifacts: list[Artifact] = []
    status_message: Message | None = None
    if latest["status"] == RunStatus.SUCCESS:
        newest = on_thread[0]["run_id"] == latest["run_id"]
        values, interrupts = _run_result(ctx, latest, newest)
        if thread.get("parked_run_id") == latest["run_id"] or (newest and interrupts):
            state = TaskState.TASK_STATE_INPUT_REQUIRED
            parts = [_data_part(interrupt) for interrupt in interrupts]
            artifact_id = f"{latest['run_id']}-interrupt"
            artifacts.append(Artifact(artifact_id=artifact_id, name=INTERRUPT_ARTIFACT, parts=parts))
            status_message = _agent_message(task_id, thread_id, parts)
        elif values is not None:
            reply = _last_ai_text(values)
            part = Part(text=reply) if reply is not None else _data_part(values)
            artifact_id = f"{latest['run_id']}-response"
            artifacts.append(Artifact(artifact_id=artifact_id, name=RESPONSE_ARTIFACT, parts=[part]))
    elif state == TaskState.TASK_STATE_FAILED:
        error = latest.get("error") or {}
        text = f"{error.get('error', 'Error')}: {error.get('message', 'the run failed')}"
        status_message = _agent_message(task_id, thread_id, [Part(text=text)])
    status = TaskStatus(state=state, timestamp=_timestamp(latest))
    if status_message is not None:
        status.message.CopyFrom(status_message)
    task = Task(id=task_id, context_id=thread_id, status=status, artifacts=artifacts)
    if message is not None:
        task.history.append(message)
        task.history[-1].task_id, task.history[-1].context_id = task_id, thread_id
    return task


def _run_result(ctx: Context, run: dict[str, Any], newest: bool) -> tuple[Any, list[dict[str, Any]]]:
    """The values a finished run left and the interrupts (`{id, value}`) it stopped on. The
    thread's newest run left the thread's state; an older one's result is the last `values`
    event of its own log (None once the log expired)."""
    if newest:
        snapshot = get_thread_state(ctx, run["thread_id"], run["graph_id"])
        values = serde.to_jsonable(snapshot.values) if snapshot.values is not None else {}
        return values, [{"id": i.id, "value": serde.to_jsonable(i.value)} for i in snapshot.interrupts]
    last: Any = None
    after = 0
    while True:
        events = ctx.events.read(run["run_id"], after)
        if not events:
            break
        after = events[-1].seq
        last = next((e.data for e in reversed(events) if e.event == "values"), last)
    if not isinstance(last, dict):
        return last, []
    interrupts = last.pop("__interrupt__", None) or []
    return last, [{"id": i.get("id"), "value": i.get("value")} for i in interrupts if isinstance(i, dict)]


def _last_ai_text(values: Any) -> str | None:
    """The text of the last AI message in the state's `messages`, if it has any."""
    if not isinstance(values, dict) or not isinstance(values.get("messages"), list):
        return None
    for msg in reversed(values["messages"]):
        if isinstance(msg, dict) and (msg.get("type") in ("ai", "AIMessageChunk") or msg.get("role") == "assistant"):
            return _text(msg.get("content"))
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, (str, dict))
        )
    return "" if content is None else str(content)


async def _follow(ctx: Context, task_id: str, run: dict[str, Any], announce: bool = True) -> AsyncGenerator[Event]:
    """The stream of a task's run: `working` once the run produces its first event (`announce`),
    then its artifacts and its final status when the run ends."""
    context_id = run["thread_id"]
    if announce:
        # Left at the first event: closed at once (`tail` is an async generator; it says iterator).
        async with aclosing(cast(AsyncGenerator[StoredEvent | None], tail(ctx, run))) as events:
            async for event in events:
                if event is not None:
                    status = TaskStatus(state=TaskState.TASK_STATE_WORKING, timestamp=datetime.now(UTC))
                    yield TaskStatusUpdateEvent(task_id=task_id, context_id=context_id, status=status)
                    break
    # Then only the run's end matters: its marker, which sits after every event, is all it reads.
    await wait_for_end(ctx, run)
    task = await run_in_threadpool(_task, ctx, task_id)
    for artifact in task.artifacts:
        yield TaskArtifactUpdateEvent(task_id=task_id, context_id=context_id, artifact=artifact, last_chunk=True)
    yield TaskStatusUpdateEvent(task_id=task_id, context_id=context_id, status=task.status)


def _list_tasks(request: Request, assistant: dict[str, Any], params: ListTasksRequest) -> ListTasksResponse:
    """This assistant's tasks the user may read, newest first: of one context, or of every thread
    its graph ran on (every thread, read from the threads' listing index: fine for a listing, not
    for a hot path)."""
    ctx = ctx_of(request)
    try:
        offset = int(params.page_token or 0)
    except ValueError:
        offset = -1
    if offset < 0:
        raise InvalidParamsError("pageToken must be one this server returned")
    size = min(params.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE, MAX_LIST_TASKS_PAGE_SIZE)
    filters = access_of(request).authorize("threads", "search", {"metadata": {}})
    if params.context_id:
        thread = ctx.threads.get(params.context_id)
        threads = [thread] if thread is not None else []
    else:
        graph_id = assistant["graph_id"]
        threads = [t for t in ctx.threads.all() if (t.get("metadata") or {}).get("graph_id") == graph_id]
    roots = [
        run
        for thread in threads
        if matches_filter(thread.get("metadata"), filters)
        for run in ctx.runs.list(thread["thread_id"])
        if run["assistant_id"] == assistant["assistant_id"] and TASK_METADATA_KEY not in (run.get("metadata") or {})
    ]
    roots.sort(key=lambda r: str(r["run_id"]), reverse=True)
    ids = [f"{r['thread_id']}:{r['run_id']}" for r in roots]
    if params.status:  # a task's state is known once it is read: read them all
        tasks = [t for t in map(partial(_task, ctx), ids) if t.status.state == params.status]
        total, page = len(tasks), tasks[offset : offset + size]
    else:
        total, page = len(ids), [_task(ctx, task_id) for task_id in ids[offset : offset + size]]
    if not params.include_artifacts:
        for task in page:
            del task.artifacts[:]
    next_token = str(offset + size) if offset + size < total else ""
    return ListTasksResponse(tasks=page, next_page_token=next_token, page_size=size, total_size=total)
