"""stepgraph.tracing without a server: which context a hop continues, what it hands on, and where
spans go (an OTLP endpoint, here a local receiver; or nowhere, ids still flowing)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from stepgraph import tracing

TRACE_ID, CALLER = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER}-01"


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Tracing set up again from this test's environment, and shut down after it."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "STEPGRAPH_TRACE_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracing, "_state", None)
    yield monkeypatch
    if tracing._state is not None:
        tracing._state.provider.shutdown()


def test_traceparent_wins_over_an_xray_header_and_both_are_handed_on(fresh: pytest.MonkeyPatch) -> None:
    # API Gateway adds its own X-Amzn-Trace-Id; the caller's traceparent is the parent.
    xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    with tracing.span("request", parent={"traceparent": TRACEPARENT, "X-Amzn-Trace-Id": xray}) as span:
        assert tracing.trace_id_of(span) == TRACE_ID
        handed = tracing.carrier()
        assert handed["traceparent"].split("-")[1] == TRACE_ID
        assert handed["X-Amzn-Trace-Id"].startswith(f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]};")
        assert tracing.xray_header() == handed["X-Amzn-Trace-Id"]
        # An SQS hop: the consumer continues the same trace from the message attributes.
        received = tracing.from_message_attributes(tracing.message_attributes())
    with tracing.span("dispatch", parent=received) as consumer:
        assert tracing.trace_id_of(consumer) == TRACE_ID
        assert tracing.in_trace({"traceparent": TRACEPARENT})
        assert not tracing.in_trace({"traceparent": f"00-{'1' * 32}-{CALLER}-01"})


def test_with_no_exporter_nothing_is_recorded_but_ids_still_flow(fresh: pytest.MonkeyPatch) -> None:
    assert not tracing.recording()
    with tracing.span("step", parent={"traceparent": TRACEPARENT}):
        assert tracing.carrier()["traceparent"].split("-")[1] == TRACE_ID
    with tracing.span("admit run") as root:  # no caller: a new trace, still an id for the run's metadata
        assert tracing.trace_id_of(root) not in (None, TRACE_ID)


def test_spans_go_to_the_otlp_endpoint_when_one_is_set(fresh: pytest.MonkeyPatch) -> None:
    posts: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        fresh.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_address[1]}")
        assert tracing.recording()
        with tracing.span("finish", parent={"traceparent": TRACEPARENT}, attributes={"run_id": "r1"}):
            pass
        tracing.flush_spans()
    finally:
        collector.shutdown()
    [(path, content_type, body)] = posts
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    assert b"finish" in body and bytes.fromhex(TRACE_ID) in body
