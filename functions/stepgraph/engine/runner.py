"""Run a thread's supersteps inside one Step invocation.

Each invocation loads the graph, resumes from the thread's latest checkpoint (or applies the
run's input on its first invocation), runs supersteps with the DynamoDB checkpointer, and stops
after a superstep's checkpoint: after one in strict mode, after a time budget in batched mode.
Stream output goes to the event log while nodes run. Only the status leaves the function.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, Send
from opentelemetry import trace

from stepgraph import tracing
from stepgraph.client_errors import error_payload
from stepgraph.engine.access import RESERVED_CONFIGURABLE, auth_configurable
from stepgraph.engine.context import Context
from stepgraph.engine.eventloop import run_on_engine_loop
from stepgraph.engine.graphs import GraphRegistry, read_as, with_checkpointer
from stepgraph.engine.handover import carried_elsewhere, hand_over
from stepgraph.engine.interrupts import DEFAULT_PARK_TIMEOUT_SECONDS, RUN_OPTIONS, park_timeout_seconds, run_option
from stepgraph.engine.streaming import GRAPH_MODES, StreamEmitter, stream_parts
from stepgraph.storage import Conflict, DynamoDBSaver, Fence, HeadConflict, LeaseCondition, SeqTaken
from stepgraph.vocabulary import RunStatus, StepOutcome

logger = logging.getLogger(__name__)

# Stream modes a client may ask for → the LangGraph mode that produces them (plus "events").
STREAM_MODES = GRAPH_MODES
# The channel of LangGraph's write that records a task's exception (private in LangGraph 1.x).
_ERROR_CHANNEL = "__error__"


@dataclass
class StepResult:
    status: StepOutcome
    park_timeout_seconds: int = DEFAULT_PARK_TIMEOUT_SECONDS
    count: int = 0  # the execution's history budget spent, this invocation included (`handover`)

    def to_payload(self) -> dict[str, Any]:
        return {"status": self.status.value, "park_timeout_seconds": self.park_timeout_seconds, "count": self.count}


class EventWriter:
    """Buffers stream events and flushes them from a background thread.

    A node's output reaches the log within a few milliseconds while the node is still running
    (token streaming), yet bursts are written in batches of up to 100 per request.
    """

    def __init__(self, ctx: Context, run_id: str):
        self.log = ctx.events
        self.run_id = run_id
        hint = self.log.next_seq_hint(run_id)  # this process wrote the run's last events
        self._guessed = hint is not None
        self.next_seq = hint if hint is not None else self.log.last_seq(run_id) + 1
        self._buffer: list[tuple[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        # In the invocation's context, as asyncio.to_thread does: what it carries (the local
        # runtime's record of which function makes a call) goes with the writes.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._loop,), name=f"events-{run_id[:8]}", daemon=True
        )
        self._thread.start()

    def append(self, event: str, data: Any) -> None:
        with self._cond:
            if self._error is not None:
                raise self._error
            self._buffer.append((event, data))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._buffer and not self._closed:
                    self._cond.wait()
                batch, self._buffer = self._buffer[:100], self._buffer[100:]
                if not batch and self._closed:
                    return
            try:
                try:
                    self.log.write(self.run_id, self.next_seq, batch)
                except SeqTaken:
                    if not self._guessed:
                        raise
                    # Another process wrote the run's log since this one did: read where it ends,
                    # as a writer without a hint does from the start.
                    self.next_seq = self.log.last_seq(self.run_id) + 1
                    self._guessed = False
                    self.log.write(self.run_id, self.next_seq, batch)
                self._guessed = False
                self.next_seq += len(batch)
            except Exception as exc:
                # Surfaced to the step on its next append or close, where it is handled.
                logger.debug("run %s: writing stream events failed", self.run_id, exc_info=True)
                with self._cond:
                    self._error = exc
                    self._buffer.clear()
                return

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error


def run_config(run: dict[str, Any], assistant: dict[str, Any] | None) -> dict[str, Any]:
    """RunnableConfig for the run: assistant config < run config < server-owned keys."""
    kwargs = run.get("kwargs", {})
    a_config = (assistant or {}).get("config") or {}
    r_config = kwargs.get("config") or {}
    configurable = {
        **(a_config.get("configurable") or {}),
        **(r_config.get("configurable") or {}),
        "thread_id": run["thread_id"],
        "run_id": run["run_id"],
        "assistant_id": run["assistant_id"],
        "graph_id": run["graph_id"],
    }
    # Who the run's user is, the server's word only: what a client or an assistant put under
    # these keys is dropped, and the user the run was created by (if auth.py authenticated one)
    # is rebuilt from the run, in every Step invocation.
    for key in RESERVED_CONFIGURABLE:
        configurable.pop(key, None)
    configurable.update(auth_configurable(run.get("auth_user")))
    config: dict[str, Any] = {**a_config, **r_config, "configurable": configurable}
    for option in RUN_OPTIONS:  # run options that may ride in a config, not RunnableConfig keys
        config.pop(option, None)
    config["metadata"] = {
        **(a_config.get("metadata") or {}),
        **(r_config.get("metadata") or {}),
        **(run.get("metadata") or {}),
        "run_id": run["run_id"],
        "thread_id": run["thread_id"],
        "assistant_id": run["assistant_id"],
        "graph_id": run["graph_id"],
    }
    return config


def run_context(run: dict[str, Any], assistant: dict[str, Any] | None) -> Any:
    """The run's `Runtime.context`: the assistant's context under the run body's own."""
    own, base = run.get("kwargs", {}).get("context"), (assistant or {}).get("context")
    if isinstance(own, dict) and isinstance(base, dict):
        return {**base, **own}
    return own if own is not None else (base or None)


def run_input(kwargs: dict[str, Any]) -> Any:
    command = kwargs.get("command")
    if command:
        goto = command.get("goto")
        if isinstance(goto, dict):
            goto = Send(goto["node"], goto.get("input"))
        elif isinstance(goto, list):
            goto = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in goto]
        update = command.get("update")
        if isinstance(update, list):
            update = [tuple(pair) for pair in update]
        return Command(resume=command.get("resume"), update=update, goto=goto or ())
    return kwargs.get("input")


def run_supersteps(
    ctx: Context,
    run_id: str,
    thread_id: str,
    *,
    remaining_ms: Callable[[], int] | None = None,
    execution: str | None = None,
    count: int = 0,
) -> StepResult:
    """One Step invocation of the run in `execution` (None: an invocation from outside a state
    machine, which neither records nor hands over), the `count`-th of that execution's budget
    (`handover`). Returns what the state machine does next, with the count spent so far."""
    run = ctx.runs.get(thread_id, run_id)
    if run is None or run["status"] != RunStatus.RUNNING:
        # Cancelled, rolled back or already finished: a late or duplicate step does nothing.
        return StepResult(StepOutcome.DONE)
    if execution is not None and carried_elsewhere(ctx, run, execution):
        return StepResult(StepOutcome.HANDOVER)  # this execution ends; the run goes on in another
    with tracing.span(
        "step", parent=run.get("trace"), attributes={"run_id": run_id, "thread_id": thread_id, "execution": execution}
    ) as span:
        result = _run_supersteps(ctx, run, remaining_ms=remaining_ms, execution=execution)
        span.set_attribute("outcome", str(result.status))
    result.count = count + 1
    if (
        execution is not None
        and result.count >= ctx.settings.handover_after
        and result.status in (StepOutcome.CONTINUE, StepOutcome.INTERRUPTED)
    ):
        result.status = hand_over(ctx, run, execution, result.status, result.park_timeout_seconds)
    return result


def _run_supersteps(
    ctx: Context, run: dict[str, Any], *, remaining_ms: Callable[[], int] | None, execution: str | None
) -> StepResult:
    run_id, thread_id = run["run_id"], run["thread_id"]
    kwargs = run.get("kwargs", {})
    # The assistant's config as it was when the run was created (the peer resolves it then too).
    assistant: dict[str, Any] | None
    if "assistant_config" in run:
        assistant = {"config": run["assistant_config"], "context": run.get("assistant_context")}
    else:
        assistant = ctx.assistants.get(run["assistant_id"])
    park_timeout = park_timeout_seconds(run, assistant)
    # The graphs this invocation runs on, start to end; `stepgraph dev --reload` may swap
    # ctx.graphs meanwhile, and then the run goes on on the new code from its next checkpoint.
    graphs = ctx.graphs
    graph = graphs.get(run["graph_id"])
    config = run_config(run, assistant)
    lease = LeaseCondition(
        table=ctx.settings.threads_table,
        key={"thread_id": {"S": thread_id}},
        expression="active_run_id = :r",
        values={":r": {"S": run_id}},
    )
    thread_config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    # With the graph's state types: this read answers LangGraph's own load of the thread (primed).
    latest = read_as(graph, ctx.checkpointer).get_tuple(thread_config)
    first = latest is None or latest.metadata.get("run_id") != run_id
    start_id = latest.config["configurable"]["checkpoint_id"] if latest else None
    # LangGraph's recursion limit counts from where stream() starts; a run spans several
    # invocations, so each continuation gets what the run has left, as one process would.
    limit = int(config.get("recursion_limit") or (graph.config or {}).get("recursion_limit") or 25)
    step_now = latest.metadata.get("step", -1) if latest else -1
    # Where the run started, for its continuations: written by the run's first commit.
    rider = None
    if first:
        # ... and, unless recorded already (a resume), the execution that carries the run.
        rider = ctx.runs.transition_action(
            thread_id,
            run_id,
            to=RunStatus.RUNNING,
            expected=(RunStatus.RUNNING,),
            patch={"start_step": step_now},
            execution=execution if run.get("execution") is None else None,
        )
    else:
        config["recursion_limit"] = max(limit - (step_now - int(run.get("start_step", step_now))), 1)
        if execution is not None and run.get("execution") is None:
            # Its first commit recorded no execution (it ran outside one): record this one now.
            ctx.runs.record_execution(thread_id, run_id, execution)
    if first:
        stream_input = run_input(kwargs)
        checkpoint_id = kwargs.get("checkpoint_id") or (kwargs.get("checkpoint") or {}).get("checkpoint_id")
        if checkpoint_id:
            config["configurable"]["checkpoint_id"] = checkpoint_id
            start_id = checkpoint_id
    else:
        stream_input = None

    # Durability: "sync" (and the peer's default "async") checkpoint every superstep. Strict mode
    # commits each one (with its tasks' writes) before the next starts and stops after it: a
    # superstep is the unit of retry. Batched mode lets a checkpoint wait commit_linger_ms for
    # later ones and commits them together (and whatever is pending when the invocation stops),
    # as the peer's "async" writes
    # while the next superstep runs: a crash or a cancel loses at most those milliseconds.
    # "exit" checkpoints only as the invocation exits (the run ends, interrupts or the time budget
    # runs out), so strict mode does not stop it after each superstep; a crash replays the
    # invocation from the run's last checkpoint, as the peer's "exit" loses the run's progress.
    exit_durability = kwargs.get("durability") == "exit"
    strict = ctx.settings.step_mode == "strict" and not exit_durability
    # The head pointer always names the newest root checkpoint, which we just read: a writer
    # that moved it since then makes our first commit fail, as a stale head read would.
    saver = ctx.checkpointer.fenced(
        Fence(
            latest.config["configurable"]["checkpoint_id"] if latest else None,
            lease=lease,
            latest=latest,
            latest_of=thread_id,
            linger_seconds=ctx.settings.commit_linger_ms / 1000,
            linger_puts=not strict,
            rider=rider,
        )
    )
    subgraphs = bool(kwargs.get("stream_subgraphs"))
    writer = EventWriter(ctx, run_id)
    emitter = StreamEmitter(writer.append, kwargs.get("stream_mode"), subgraphs=subgraphs)
    deadline = time.monotonic() + ctx.settings.step_budget_ms / 1000
    if remaining_ms is not None:
        deadline = min(deadline, time.monotonic() + max(remaining_ms() - 5_000, 1_000) / 1000)

    interrupt_before = run_option(run, "interrupt_before", assistant)
    interrupt_after = run_option(run, "interrupt_after", assistant)
    if tracing.recording():  # a span per superstep and per node, under the step's
        drive_nodes: tracing.NodeSpans | None = tracing.NodeSpans(trace.get_current_span(), run_id)
        config["callbacks"] = [*(config.get("callbacks") or []), drive_nodes]
    else:
        drive_nodes = None
    drive = _Drive(
        ctx,
        run_id,
        thread_id,
        writer,
        emitter,
        graphs=graphs,
        start_id=start_id,
        replaying=not first,
        strict=strict,
        exit_durability=exit_durability,
        deadline=deadline,
        interrupts=(interrupt_before, interrupt_after),
        saver=saver,
    )
    drive.nodes = drive_nodes
    try:
        try:
            context = run_context(run, assistant)

            def parts_of(graph: Any) -> AsyncGenerator[Any]:
                return stream_parts(
                    with_checkpointer(graph, saver, store=ctx.store),
                    stream_input,
                    config,
                    modes=emitter.graph_modes,
                    subgraphs=subgraphs,
                    events=emitter.events,
                    continuation=not first,
                    durability="exit" if exit_durability else "sync",
                    interrupt_before=interrupt_before,
                    interrupt_after=interrupt_after,
                    context=context,
                )

            # A graph factory builds the run's graph with the run's config and context (on the
            # engine loop, where its async resources live) and closes it when the run stops.
            opened = graphs.aopen_graph(run["graph_id"], config, context=context)
            run_on_engine_loop(drive.run(opened, parts_of))
        except (HeadConflict, SeqTaken, BotoCoreError, ClientError):
            raise
        except Exception as exc:
            # The graph raised (after its own RetryPolicy): the run errs, with this as its error.
            logger.warning("run %s raised %s", run_id, type(exc).__name__, exc_info=True)
            drive.graph_error = exc
        saver.settle()  # a checkpoint put the stopped graph did not wait for lands (or fails) first
        if drive.graph_error is not None and _ERROR_CHANNEL not in saver.pending_channels():
            # No node failed (LangGraph records a node's exception as an ERROR write): what raised
            # is the application of writes, the run's input or command or a node's output that a
            # reducer refuses. Left pending, every read of the thread would apply them again.
            saver.abandon()
        saver.commit()  # what is still pending, the error's own writes included; a cancel fails it
    except HeadConflict as conflict:
        _close_quietly(writer)
        if conflict.reason == "lease":
            logger.info("run %s lost its thread lease; stopping", run_id)
            return StepResult(StepOutcome.DONE)
        # A duplicate invocation advanced the thread first: continue from its checkpoint.
        logger.info("run %s: head moved under a duplicate step; continuing from the new head", run_id)
        return StepResult(StepOutcome.CONTINUE, park_timeout)
    except SeqTaken:
        # Another invocation of this run is writing its log: let the state machine re-drive
        # from whatever checkpoint that invocation reaches.
        return StepResult(StepOutcome.CONTINUE, park_timeout)
    except (BotoCoreError, ClientError):
        try:
            writer.close()
        except Exception:
            logger.info("run %s: its stream events were not flushed either", run_id, exc_info=True)
        raise  # storage faults are the state machine's to retry, not the graph's error
    finally:
        saver.abandon()  # a failed invocation's uncommitted checkpoints stay unwritten
        if drive_nodes is not None:
            drive_nodes.close("error" if drive.graph_error is not None else "stopped")
    if drive.graph_error is not None:
        if drive.input_rejected and drive.last_checkpoint_id:
            # Its input checkpoint may have been committed already (strict mode, or the linger
            # timer): left there, every read of the thread would apply the bad input again.
            ctx.checkpointer.delete_checkpoint(thread_id, drive.last_checkpoint_id)
        payload = error_payload(drive.graph_error)
        with contextlib.suppress(SeqTaken):
            writer.append("error", payload)
        if not _close_quietly(writer):
            return StepResult(StepOutcome.CONTINUE, park_timeout)
        try:
            ctx.runs.transition(
                thread_id, run_id, to=RunStatus.RUNNING, expected=(RunStatus.RUNNING,), patch={"error": payload}
            )
        except Conflict:
            return StepResult(StepOutcome.DONE)
        return StepResult(StepOutcome.ERROR, park_timeout)
    if not _close_quietly(writer) or drive.stopped_early:
        return StepResult(StepOutcome.CONTINUE, park_timeout)
    if drive.cancelled:
        return StepResult(StepOutcome.DONE)
    last_next = drive.last_next
    if last_next is None:  # wrote nothing (e.g. durability "exit" or an empty resume): ask
        bound = with_checkpointer(graph, saver, store=ctx.store)
        last_next = list(bound.get_state({"configurable": {"thread_id": thread_id}}).next)
    return StepResult(StepOutcome.INTERRUPTED if last_next else StepOutcome.DONE, park_timeout)


class _Drive:
    """Drives the graph's stream on the engine loop: appends its parts to the run's log and stops
    it after a superstep's checkpoint once the mode or the time budget says so."""

    def __init__(
        self,
        ctx: Context,
        run_id: str,
        thread_id: str,
        writer: EventWriter,
        emitter: StreamEmitter,
        *,
        graphs: GraphRegistry,
        start_id: str | None,
        replaying: bool,
        strict: bool,
        exit_durability: bool,
        deadline: float,
        interrupts: tuple[Any, Any],
        saver: DynamoDBSaver,
    ):
        self.ctx, self.run_id, self.thread_id, self.writer, self.emitter = ctx, run_id, thread_id, writer, emitter
        self.graphs = graphs
        self.start_id, self.replaying, self.strict = start_id, replaying, strict
        self.exit_durability, self.deadline = exit_durability, deadline
        self.interrupt_before, self.interrupt_after = interrupts
        self.saver = saver
        self._ran: list[str] = []  # the tasks of the superstep that the next checkpoint closes
        self.last_next: list[str] | None = None  # `next` of the newest checkpoint this invocation wrote
        self.last_checkpoint_id: str | None = None  # the newest checkpoint of this run seen
        self.last_source: str | None = None  # its metadata "source": input, loop, update...
        self.stopped_early = self.cancelled = False
        self.graph_error: Exception | None = None
        self.nodes: tracing.NodeSpans | None = None  # the superstep and node spans, when recorded

    def _newest(self, chunk: dict[str, Any]) -> None:
        """Remember the run's newest checkpoint (the one it resumed from counts: strict mode
        stops right after the input checkpoint, and the input applies in the next invocation)."""
        metadata = chunk.get("metadata") or {}
        # A checkpoint the stream just wrote carries no run_id in its chunk; a stored one does.
        mine = metadata.get("run_id", self.run_id) == self.run_id
        self.last_checkpoint_id = chunk["config"]["configurable"]["checkpoint_id"] if mine else None
        self.last_source = metadata.get("source") if mine else None

    async def _stored(self, checkpoint_id: str) -> None:
        """Wait until the saver has the checkpoint the step stops after. LangGraph announces a
        checkpoint as it starts writing it, and astream_events runs the graph in a task of its
        own: stopping the stream at once can cancel the write, and the next invocation would
        then start the run over."""
        deadline = time.monotonic() + 10
        while not self.saver.holds(checkpoint_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.001)

    def _graph_interrupts(self, ran: list[str], pending: list[str]) -> bool:
        """Whether interrupt_after (of the tasks just run) or interrupt_before (of the tasks next)
        stops the graph on this checkpoint. Then the step lets LangGraph stop it: a continuation
        invocation starts with no input, which LangGraph takes for a resume past the interrupt."""

        def hits(option: Any, names: list[str]) -> bool:
            if option == "*":
                return any(name != "__start__" for name in names)
            return bool(option) and any(name in option for name in names)

        return hits(self.interrupt_after, ran) or hits(self.interrupt_before, pending)

    @property
    def _reloaded(self) -> bool:
        """The graphs were reloaded (`stepgraph dev`) since this invocation started: it stops at
        this checkpoint, and the next invocation continues the run on the new code."""
        return self.ctx.graphs is not self.graphs

    @property
    def input_rejected(self) -> bool:
        """The graph raised while applying the run's input (a reducer refused it, say): its input
        checkpoint is the newest it wrote, and no node has run."""
        return self.graph_error is not None and self.last_source == "input"

    async def run(
        self, opened: AbstractAsyncContextManager[Any], parts_of: Callable[[Any], AsyncGenerator[Any]]
    ) -> None:
        async with opened as graph:
            await self._drive(parts_of(graph))

    async def _drive(self, parts: AsyncGenerator[Any]) -> None:
        emit_checkpoints = self.emitter.wants("checkpoints")
        try:
            async for ns, mode, chunk in parts:
                if ns is None:  # astream_events' own events (stream mode "events")
                    self.emitter.event(chunk)
                    continue
                if mode == "checkpoints" and not ns:
                    self._newest(chunk)
                    if self.nodes is not None:
                        step = (chunk.get("metadata") or {}).get("step")
                        checkpoint_id = chunk["config"]["configurable"]["checkpoint_id"]
                        if isinstance(step, int):
                            self.nodes.checkpointed(step, checkpoint_id, chunk["next"])
                    ran, self._ran = self._ran, list(chunk["next"])
                    if chunk["config"]["configurable"]["checkpoint_id"] == self.start_id:
                        self.replaying = False  # LangGraph re-announces the checkpoint it resumed from
                        continue
                    self.replaying = False
                    self.last_next = chunk["next"]
                    if emit_checkpoints:
                        self.writer.append("checkpoints", chunk)
                    if (
                        chunk["next"]
                        and self.exit_durability
                        and await asyncio.to_thread(_cancelled, self.ctx, self.thread_id, self.run_id)
                    ):
                        # Between supersteps, as the peer stops a cancelled run. With "sync" the
                        # checkpoint write's lease condition is this check; "exit" writes none.
                        self.cancelled = True
                        return
                    if self._graph_interrupts(ran, chunk["next"]):
                        continue  # LangGraph stops here itself; the next invocation must not resume past it
                    if chunk["next"] and (self.strict or time.monotonic() >= self.deadline or self._reloaded):
                        await self._stored(chunk["config"]["configurable"]["checkpoint_id"])
                        self.stopped_early = True
                        return
                    continue
                if self.replaying and mode in ("values", "debug", "checkpoints"):
                    continue
                self.replaying = False
                self.emitter.emit(ns, mode, chunk)
        finally:
            await parts.aclose()  # "exit" writes its checkpoint here


def _cancelled(ctx: Context, thread_id: str, run_id: str) -> bool:
    run = ctx.runs.get(thread_id, run_id)
    return run is None or run["status"] != RunStatus.RUNNING


def _close_quietly(writer: EventWriter) -> bool:
    """Flush the log; False when a duplicate invocation of this run wrote those seqs first."""
    try:
        writer.close()
    except SeqTaken:
        return False
    return True
