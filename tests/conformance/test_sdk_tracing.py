"""One trace from request to webhook: a caller's `traceparent` on `runs.wait` reaches every hop of
its run (the API request, admission, dispatch, the execution's start, each step with its
supersteps and nodes, park, the resume, finish, the webhook delivery), the spans form one tree
under the caller's span, the webhook receiver gets the trace in `traceparent`, and the run's
metadata names the trace. Spans are read back from the JSON-lines file `stepgraph dev` writes.

The resumed part: a resume is a run of its own, so its spans hang under the request that made it
(here it carries the same `traceparent`, so both requests are children of the caller's span);
the parked run's spans end with its park and its webhook."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from harness import Server, until
from langgraph_sdk import get_client
from stepgraph_local.cli import main as stepgraph

pytestmark = pytest.mark.asyncio(loop_scope="function")


class _Receiver:
    """A webhook endpoint that keeps each POST's headers and body."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                posts.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(200)
                self.end_headers()

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


def _spans(path: Path, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans in the server's span file (shared by every test on that server)."""
    spans = []
    for line in path.read_text().splitlines() if path.exists() else []:
        if trace_id in line:
            try:
                spans.append(json.loads(line))
            except json.JSONDecodeError:  # a batch still being written: the next poll reads it whole
                continue
    return spans


async def test_one_trace_from_request_to_webhook(server: Server, capsys: pytest.CaptureFixture[str]):
    trace_file = server.trace_file
    receiver = _Receiver()
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = {"traceparent": f"00-{trace_id}-{caller_span}-01"}
    client = get_client(url=server.url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]

    parked = await client.runs.wait(
        thread_id, "approval", input={"items": []}, webhook=receiver.url, headers=traceparent
    )
    assert parked["__interrupt__"]
    done = await client.runs.wait(
        thread_id, "approval", command={"resume": "yes"}, webhook=receiver.url, headers=traceparent
    )
    assert done == {"items": ["draft", "review:yes", "published"]}

    # The user finds the trace from the SDK: each run's metadata names it.
    first, resume = sorted(await client.runs.list(thread_id), key=lambda r: r["created_at"])
    assert first["metadata"]["trace_id"] == resume["metadata"]["trace_id"] == trace_id

    # Both webhooks (the park's and the finish's) carry the trace to the receiver.
    until(lambda: len(receiver.posts) == 2, timeout=10)
    receiver.http.shutdown()
    for headers, _ in receiver.posts:
        assert headers["traceparent"].split("-")[1] == trace_id

    def complete() -> list[dict[str, Any]] | None:
        spans = [s for s in _spans(trace_file, trace_id) if s["trace_id"] == trace_id]
        return spans if sum(s["name"] == "webhook" for s in spans) == 2 else None

    spans = until(complete, timeout=10)
    by_id = {s["span_id"]: s for s in spans}
    # One tree: every span's parent is a span of the trace, but the API requests', whose parent
    # is the caller's span.
    roots = [s for s in spans if s["parent_id"] not in by_id]
    assert {s["parent_id"] for s in roots} == {caller_span}
    assert sorted(s["name"] for s in roots) == [f"POST /threads/{thread_id}/runs/wait"] * 2

    def of_run(run_id: str) -> set[str]:
        """The names of the spans in the subtree of the run's admission."""
        [admit] = [s for s in spans if s["name"] == "admit run" and s["attributes"].get("run_id") == run_id]
        names, todo = set(), [admit["span_id"]]
        while todo:
            parent = todo.pop()
            for s in spans:
                if s["parent_id"] == parent:
                    names.add(s["name"])
                    todo.append(s["span_id"])
        return names

    assert {"dispatch", "start execution", "step", "superstep", "node draft", "node review", "park", "webhook"} <= (
        of_run(first["run_id"])
    )
    assert {"dispatch", "resume execution", "step", "superstep", "node review", "node publish", "finish"} <= (
        of_run(resume["run_id"])
    )
    assert "webhook" in of_run(resume["run_id"])

    # Nodes say their superstep and outcome; supersteps their checkpoint.
    [review_parked] = [
        s for s in spans if s["name"] == "node review" and s["attributes"].get("outcome") == "interrupted"
    ]
    parked_step = by_id[review_parked["parent_id"]]
    assert parked_step["name"] == "superstep" and parked_step["attributes"]["outcome"] == "interrupted"
    ended = [s for s in spans if s["name"] == "superstep" and s["attributes"]["outcome"] == "ok"]
    assert ended and all(s["attributes"]["checkpoint_id"] for s in ended)
    # The receiver's traceparent names the delivery's span.
    webhook_spans = {s["span_id"] for s in spans if s["name"] == "webhook"}
    assert {headers["traceparent"].split("-")[2] for headers, _ in receiver.posts} == webhook_spans

    # `stepgraph trace <run_id>` prints the tree with durations.
    assert stepgraph(["trace", resume["run_id"], "--file", str(trace_file)]) == 0
    printed = capsys.readouterr().out
    assert f"trace {trace_id}" in printed
    assert "\n    admit run  " in printed and " ms " in printed and "finish" in printed


async def test_a_deadline_resume_goes_on_in_the_parked_runs_trace(server: Server):
    """No request makes the resume a human's deadline makes: it continues the parked run's trace."""
    client = get_client(url=server.url)
    assistant = await client.assistants.create(
        "approval",
        config={"interrupt_deadline_seconds": 1, "on_interrupt_deadline": {"action": "resume", "value": "auto"}},
    )
    trace_id = secrets.token_hex(16)
    thread = await client.threads.create()
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"items": []}, headers=headers)

    def resumed_and_finished() -> list[dict[str, Any]] | None:
        spans = _spans(server.trace_file, trace_id)
        return spans if any(s["name"] == "finish" for s in spans) else None

    spans = until(resumed_and_finished, timeout=15)
    [expire] = [s for s in spans if s["name"] == "expire park"]
    resume_id = expire["attributes"]["run_id"]
    by_id = {s["span_id"]: s for s in spans}
    for name in ("step", "finish"):
        [span] = [s for s in spans if s["name"] == name and s["attributes"].get("run_id") == resume_id]
        assert by_id[span["parent_id"]]["name"] == "expire park"
    [resume] = [r for r in await client.runs.list(thread["thread_id"]) if r["run_id"] == resume_id]
    assert resume["metadata"]["trace_id"] == trace_id
    await client.assistants.delete(assistant["assistant_id"])
