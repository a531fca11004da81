"""Distributed tracing: one OpenTelemetry trace from a caller's request to its run's webhook.

Each hop continues the trace from what it was handed, never from what happens to be current in
the process: the API from the request's headers; dispatch from the doorbell's message attributes;
the state machine's Lambdas (step, park, finish) from the run's record (`run["trace"]`, written
when the run is queued, so a resume run, a run of its own, carries its own request's context);
the webhook from its delivery (captured as the delivery is queued). The propagator reads and
writes W3C `traceparent`/`tracestate` and X-Ray's `X-Amzn-Trace-Id`; on extract, `traceparent`
wins over an `X-Amzn-Trace-Id` that API Gateway added. Trace ids come from X-Ray's generator
(time-prefixed), so the same ids are valid in X-Ray.

Where spans go is decided once per process: an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, the
ADOT collector layer's on AWS), else a JSON-lines file (`STEPGRAPH_TRACE_FILE`, which
`stepgraph dev` sets), else nowhere: then spans are not recorded at all (ids still propagate, so
the run's `trace_id` and the webhook's `traceparent` are there), and the per-node callback is
not installed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.context import Context as TraceContext
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.aws.aws_xray_propagator import AWS_TRACE_HEADER_ENV_KEY, TRACE_HEADER_KEY
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "NodeSpans",
    "TraceSettings",
    "carrier",
    "flush_spans",
    "flushed",
    "from_message_attributes",
    "in_trace",
    "message_attributes",
    "recording",
    "span",
    "trace_id_of",
    "xray_header",
]

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# Extract: the last propagator that finds a context wins, so W3C goes last.
PROPAGATOR = CompositePropagator([AwsXRayPropagator(), TraceContextTextMapPropagator()])
_XRAY = AwsXRayPropagator()
# The ADOT collector layer's OTLP/HTTP receiver, inside the Lambda sandbox.
_COLLECTOR_LAYER_ENDPOINT = "http://localhost:4318"


@dataclass(frozen=True)
class TraceSettings:
    """Where this process's spans go: read from the environment once."""

    otlp_endpoint: str | None = None
    trace_file: str | None = None
    service: str = "stepgraph"

    @classmethod
    def from_env(cls) -> TraceSettings:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if not endpoint and os.environ.get("STEPGRAPH_OTEL_COLLECTOR_LAYER"):
            # template.yaml's OtelCollectorLayerArn: the ADOT collector runs beside the function.
            endpoint = _COLLECTOR_LAYER_ENDPOINT
        return cls(
            otlp_endpoint=endpoint or None,
            trace_file=os.environ.get("STEPGRAPH_TRACE_FILE") or None,
            service=os.environ.get("OTEL_SERVICE_NAME") or os.environ.get("POWERTOOLS_SERVICE_NAME") or "stepgraph",
        )


def _traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces path under a base endpoint (a signal-specific one is used as it is)."""
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == endpoint or endpoint.endswith("/v1/traces"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


class JsonLinesExporter(SpanExporter):
    """One JSON object a line per finished span, appended to a file (`stepgraph trace` reads it)."""

    def __init__(self, path: str):
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(_span_record(s), default=str) + "\n" for s in spans)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(lines)
        except OSError:
            logger.warning("spans not written to %s", self.path, exc_info=True)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _span_record(s: ReadableSpan) -> dict[str, Any]:
    context, parent = s.context, s.parent
    start, end = s.start_time or 0, s.end_time or 0
    return {
        "trace_id": format(context.trace_id, "032x") if context else None,
        "span_id": format(context.span_id, "016x") if context else None,
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "name": s.name,
        "kind": s.kind.name,
        "start_ns": start,
        "end_ns": end,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": s.status.status_code.name,
        "attributes": dict(s.attributes or {}),
        "links": [format(link.context.trace_id, "032x") for link in s.links],
        "service": s.resource.attributes.get("service.name"),
    }


class _Tracing:
    def __init__(self, settings: TraceSettings):
        exporter: SpanExporter | None = None
        delay_ms = 5000
        if settings.otlp_endpoint:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed; no spans")
            else:
                # OTEL_EXPORTER_OTLP_* (headers, timeouts) are read by the exporter itself.
                exporter = OTLPSpanExporter(endpoint=_traces_url(settings.otlp_endpoint))
        elif settings.trace_file:
            exporter, delay_ms = JsonLinesExporter(settings.trace_file), 200
        self.recording = exporter is not None
        # Nowhere to send spans: sample none, so a span costs an id, not a record.
        self.provider = TracerProvider(
            sampler=ALWAYS_ON if self.recording else ALWAYS_OFF,
            resource=Resource.create({"service.name": settings.service}),
            id_generator=AwsXRayIdGenerator(),
        )
        if exporter is not None:
            self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay_ms))
        self.tracer: Tracer = self.provider.get_tracer("stepgraph")


_state: _Tracing | None = None
_state_lock = threading.Lock()


def _tracing() -> _Tracing:
    global _state
    if _state is None:
        with _state_lock:
            if _state is None:
                _state = _Tracing(TraceSettings.from_env())
    return _state


def recording() -> bool:
    """Whether spans are recorded (an exporter is configured)."""
    return _tracing().recording


def flushed(handler: Callable[P, R]) -> Callable[P, R]:
    """A Lambda handler that sends its spans before it returns (see `flush_spans`)."""

    @functools.wraps(handler)
    def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        finally:
            flush_spans()

    return traced


def flush_spans() -> None:
    """Send what is buffered: a Lambda freezes between invocations, its batch thread with it."""
    state = _state
    if state is not None and state.recording:
        state.provider.force_flush(timeout_millis=2000)


def _parent(parent: Mapping[str, Any] | None) -> TraceContext:
    """The context a carrier names; with none, the Lambda's own X-Ray segment when there is one
    (`_X_AMZN_TRACE_ID`, under active tracing), else a new trace."""
    if parent:
        return PROPAGATOR.extract({str(k): str(v) for k, v in parent.items()})
    lambda_segment = os.environ.get(AWS_TRACE_HEADER_ENV_KEY)
    return _XRAY.extract({TRACE_HEADER_KEY: lambda_segment} if lambda_segment else {})


@contextmanager
def span(
    name: str,
    *,
    parent: Mapping[str, Any] | TraceContext | None = None,
    current: bool = False,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span of one hop. Its parent is `parent` (a carrier: headers, message attributes, a
    run's `trace`), or, with `current=True`, the span current in this thread."""
    context = None if current else (parent if isinstance(parent, TraceContext) else _parent(parent))
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    with _tracing().tracer.start_as_current_span(name, context=context, kind=kind, attributes=attrs) as s:
        yield s


def in_trace(parent: Mapping[str, Any] | None) -> bool:
    """Whether the current span belongs to the trace `parent` names (then a hop's span goes under
    the current one, which continued that trace, rather than beside it)."""
    current = trace.get_current_span().get_span_context()
    if not parent or not current.is_valid:
        return False
    named = trace.get_current_span(_parent(parent)).get_span_context()
    return named.is_valid and named.trace_id == current.trace_id


def message_attributes() -> dict[str, dict[str, str]]:
    """The current span's context as SQS message attributes."""
    return {name: {"DataType": "String", "StringValue": value} for name, value in carrier().items()}


def from_message_attributes(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    """A carrier from SQS message attributes, as an SQS event or ReceiveMessage gives them."""
    out: dict[str, str] = {}
    for name, value in (attributes or {}).items():
        text = value.get("stringValue") or value.get("StringValue") if isinstance(value, Mapping) else None
        if isinstance(text, str):
            out[name] = text
    return out


def carrier() -> dict[str, str]:
    """The current span's context as headers (`traceparent`, `tracestate`, `X-Amzn-Trace-Id`):
    what a hop stores or sends so the next one continues the trace."""
    out: dict[str, str] = {}
    PROPAGATOR.inject(out)
    return out


def xray_header() -> str | None:
    """The current span as an X-Ray trace header (Step Functions' `traceHeader`)."""
    out: dict[str, str] = {}
    _XRAY.inject(out)
    return out.get("X-Amzn-Trace-Id")


def trace_id_of(s: Span | None = None) -> str | None:
    """The (current) span's trace id in hex, as OTLP backends and `stepgraph trace` show it."""
    context = (s or trace.get_current_span()).get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class NodeSpans(BaseCallbackHandler):
    """A LangGraph callback that makes a span per superstep and, under it, a span per node (its
    name, superstep, task id, outcome). The runner closes a superstep with the checkpoint that
    ends it (`checkpointed`) and everything left open when the invocation stops (`close`)."""

    run_inline = True  # called on the graph's own thread or loop: no executor hop per event

    def __init__(self, parent: Span, run_id: str):
        super().__init__()
        self._parent = trace.set_span_in_context(parent)
        self._run_id = run_id
        self._steps: dict[int, Span] = {}
        self._nodes: dict[UUID, tuple[Span, int]] = {}
        self._interrupted: set[int] = set()
        self._root: UUID | None = None
        self._lock = threading.Lock()

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        metadata = metadata or {}
        if parent_run_id is None:
            self._root = run_id
            return
        node, step = metadata.get("langgraph_node"), metadata.get("langgraph_step")
        # A node of the run's own graph: a task directly under the graph's run (subgraph nodes
        # and a node's inner runnables are inside its span's time already).
        if parent_run_id != self._root or not isinstance(node, str) or not isinstance(step, int):
            return
        if node.startswith("__"):
            return
        tracer = _tracing().tracer
        with self._lock:
            step_span = self._steps.get(step)
            if step_span is None:
                step_span = tracer.start_span(
                    "superstep", context=self._parent, attributes={"run_id": self._run_id, "superstep": step}
                )
                self._steps[step] = step_span
            node_span = tracer.start_span(
                f"node {node}",
                context=trace.set_span_in_context(step_span),
                attributes={"node": node, "superstep": step, "task_id": str(metadata.get("langgraph_task_id", ""))},
            )
            self._nodes[run_id] = (node_span, step)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_node(run_id, "ok", None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        interrupted = type(error).__name__ in ("GraphInterrupt", "NodeInterrupt", "ParentCommand")
        self._end_node(run_id, "interrupted" if interrupted else "error", None if interrupted else error)

    def _end_node(self, run_id: UUID, outcome: str, error: BaseException | None) -> None:
        with self._lock:
            entry = self._nodes.pop(run_id, None)
            if entry is not None and outcome == "interrupted":
                self._interrupted.add(entry[1])
        if entry is None:
            return
        node = entry[0]
        node.set_attribute("outcome", outcome)
        if error is not None:
            node.record_exception(error)
            node.set_status(Status(StatusCode.ERROR, type(error).__name__))
        node.end()

    def checkpointed(self, step: int, checkpoint_id: str, next_nodes: Sequence[str]) -> None:
        """The checkpoint that closes superstep `step` was written."""
        with self._lock:
            step_span = self._steps.pop(step, None)
        if step_span is None:
            return
        step_span.set_attribute("checkpoint_id", checkpoint_id)
        step_span.set_attribute("next", list(next_nodes))
        step_span.set_attribute("outcome", "interrupted" if step in self._interrupted else "ok")
        step_span.end()

    def close(self, outcome: str) -> None:
        """The invocation stopped: end what is still open (a superstep without its checkpoint)."""
        with self._lock:
            nodes, self._nodes = [n for n, _ in self._nodes.values()], {}
            steps, self._steps = dict(self._steps), {}
        for s in nodes:
            s.set_attribute("outcome", outcome)
            s.end()
        for step, s in steps.items():  # an interrupt writes no checkpoint of its own superstep
            s.set_attribute("outcome", "interrupted" if step in self._interrupted else outcome)
            s.end()
