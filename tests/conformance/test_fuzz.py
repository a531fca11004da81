"""No 5xx on any input: the running server fuzzed with schemathesis against its own /openapi.json.

Every operation gets a fixed number of generated requests, schema-valid ones and schema-violating
ones, from a Hypothesis run with a fixed seed per operation (CI sends the same ones every time), against
the server whose example graphs have async nodes. Random ids
would only ever meet a 404, so path ids are drawn from resources this test creates (a finished
thread, a thread parked on an interrupt, their runs and checkpoints, an assistant), bodies name
real graphs, and each run-creating request may get a thread created for it: the links of a
stateful run, made by hand so that the run is reproducible and never touches resources other
tests use. Every response must be below 500, and every error body JSON with a `detail` key.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from cleanup import removing_what_is_created
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

# Generated requests per operation and flavor: schema-valid, then schema-violating.
POSITIVE_EXAMPLES = 10
NEGATIVE_EXAMPLES = 5
REQUEST_TIMEOUT = 10.0
STREAM_SECONDS = 1.0  # how long an SSE stream is read (or waited for) before the client leaves
# Surfaces with their own error shapes (reference §7, §8): checked for 5xx only.
OWN_ERROR_SHAPES = ("/mcp", "/a2a", "/.well-known")
# Deleting the shared resources would starve every later operation: these go last.
DESTRUCTIVE = ("DELETE", "/prune", "/cancel")


class Pool:
    """Resources the fuzzer may name in paths and bodies; all created here."""

    def __init__(self, url: str):
        self.client = httpx.Client(base_url=url, timeout=30)
        self.requests = 0
        self.graphs = sorted(
            a["graph_id"]
            for a in self.call("POST", "/assistants/search", json={"limit": 100}).json()
            if (a.get("metadata") or {}).get("created_by") == "system"
        )
        done = self.new_thread()
        self.call("POST", f"/threads/{done}/runs/wait", json={"assistant_id": "chain", "input": {"items": []}})
        parked = self.new_thread()
        self.call("POST", f"/threads/{parked}/runs/wait", json={"assistant_id": "approval", "input": {}})
        self.threads = [done, parked]
        self.runs = [(t, r["run_id"]) for t in self.threads for r in self.call("GET", f"/threads/{t}/runs").json()]
        history = self.call("POST", f"/threads/{done}/history", json={"limit": 5}).json()
        self.checkpoints = [s["checkpoint"]["checkpoint_id"] for s in history]
        created = self.call("POST", "/assistants", json={"graph_id": "chain", "name": "fuzz"}).json()
        self.assistants = [created["assistant_id"]]
        assert self.graphs and len(self.runs) == 2 and self.checkpoints

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.requests += 1
        response = self.client.request(method, path, **kwargs)
        assert response.status_code < 500, (method, path, response.text)
        return response

    def new_thread(self) -> str:
        return self.call("POST", "/threads", json={}).json()["thread_id"]


def _creates_run(method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/").endswith(("/runs", "/runs/wait", "/runs/stream"))


def _aim(case: Any, data: st.DataObject, pool: Pool) -> None:
    """Point a generated request at real resources (most of the time): the hand-made links."""
    method, path = case.method.upper(), case.path
    params = case.path_parameters or {}
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and _creates_run(method, path) and not isinstance(body.get("after_seconds"), bool):
        delay = body.get("after_seconds")
        if isinstance(delay, (int, float)) and delay > 0 and not path.endswith("/runs"):
            # A delayed run makes /wait and /stream wait that long; the background create
            # (same body model) is where delays are fuzzed.
            del body["after_seconds"]
    if "thread_id" in params and data.draw(st.integers(0, 3), label="aim thread") > 0:
        if "run_id" in params:
            params["thread_id"], params["run_id"] = data.draw(st.sampled_from(pool.runs), label="run")
        elif _creates_run(method, path) and (
            data.draw(st.booleans(), label="fresh thread") or (body or {}).get("after_seconds")
        ):
            params["thread_id"] = pool.new_thread()  # a delayed or odd run must not block the pool's threads
        else:
            params["thread_id"] = data.draw(st.sampled_from(pool.threads), label="thread")
    if "checkpoint_id" in params and data.draw(st.booleans(), label="aim checkpoint"):
        params["checkpoint_id"] = data.draw(st.sampled_from(pool.checkpoints), label="checkpoint")
    if "assistant_id" in params and data.draw(st.integers(0, 3), label="aim assistant") > 0:
        params["assistant_id"] = data.draw(st.sampled_from(pool.assistants), label="assistant")
    if body is not None:
        if "assistant_id" in body and data.draw(st.integers(0, 3), label="aim body assistant") > 0:
            body["assistant_id"] = data.draw(st.sampled_from(pool.graphs + pool.assistants), label="graph")
        if "graph_id" in body and data.draw(st.integers(0, 3), label="aim body graph") > 0:
            body["graph_id"] = data.draw(st.sampled_from(pool.graphs), label="graph id")
        if "thread_id" in body and data.draw(st.booleans(), label="aim body thread"):
            body["thread_id"] = data.draw(st.sampled_from(pool.threads), label="body thread")


def _send(session: requests.Session, kwargs: dict[str, Any]) -> tuple[int, bytes, str]:
    """Status, body and content type; an SSE stream is read for STREAM_SECONDS, then left."""
    streams = "/stream" in kwargs["url"]
    timeout = (REQUEST_TIMEOUT, STREAM_SECONDS if streams else REQUEST_TIMEOUT)
    with session.request(**kwargs, stream=True, timeout=timeout) as response:
        kind = response.headers.get("content-type", "")
        if kind.startswith("text/event-stream"):
            chunks, until = [], time.monotonic() + STREAM_SECONDS
            try:
                for chunk in response.iter_content(chunk_size=None):
                    chunks.append(chunk)
                    if time.monotonic() > until:
                        break
            except requests.ConnectionError:
                pass  # a quiet stream: the read timed out, the client leaves
            return response.status_code, b"".join(chunks), kind
        return response.status_code, response.content, kind


def _problem(path: str, status: int, body: bytes, kind: str) -> str | None:
    if status >= 500:
        return f"server error {status}"
    if status >= 400 and not path.startswith(OWN_ERROR_SHAPES):
        try:
            parsed = httpx.Response(status, content=body).json()
        except ValueError:
            return f"{status} error body is not JSON ({kind}): {body[:200]!r}"
        if not isinstance(parsed, dict) or "detail" not in parsed:
            return f"{status} error body has no detail: {body[:200]!r}"
    return None


def _fuzz_operation(
    operation: Any, mode: GenerationMode, examples: int, flavor: str, pool: Pool, session, tally
) -> None:
    @seed(zlib.crc32(f"{flavor} {mode.value} {operation.method.upper()} {operation.path}".encode()))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: problems are collected, not raised
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def fuzz(case: Any, data: st.DataObject) -> None:
        _aim(case, data, pool)
        kwargs = case.as_transport_kwargs(base_url=pool.client.base_url.__str__().rstrip("/"))
        tally["requests"] += 1
        try:
            status, body, kind = _send(session, kwargs)
        except requests.RequestException as exc:
            tally["transport errors"] += 1
            tally.problems.append(f"{case.method} {case.formatted_path}: {type(exc).__name__}: {exc}")
            return
        tally[f"{status // 100}xx"] += 1
        problem = _problem(case.path, status, body, kind)
        if problem:
            tally.problems.append(f"{case.method} {case.path}: {problem}\n    {case.as_curl_command()}")

    with contextlib.suppress(Unsatisfiable):  # an operation without parameters has no negative cases
        fuzz()


class Tally(Counter):
    problems: list[str]


# Input validation is the HTTP layer's, which never sees how nodes are written: one flavor (async,
# as most users' graphs) is fuzzed, not both (CI's time budget).
@pytest.mark.parametrize("flavor", ["async"], scope="session")
def test_no_server_error_on_any_input(server, flavor, record_counts):
    with removing_what_is_created(server.url):
        _fuzz_everything(server, flavor, record_counts)


def _fuzz_everything(server, flavor, record_counts):
    started = time.monotonic()
    pool = Pool(server.url)
    raw = pool.call("GET", "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: any(mark in f"{op.method.upper()} {op.path}" for mark in DESTRUCTIVE))
    tally = Tally()
    tally.problems = []
    session = requests.Session()
    for operation in operations:
        for mode, examples in (
            (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
            (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
        ):
            _fuzz_operation(operation, mode, examples, flavor, pool, session, tally)
    seconds = round(time.monotonic() - started, 1)
    counts = {
        "operations": len(operations),
        "requests": tally["requests"] + pool.requests,
        "fuzzed": tally["requests"],
        **{k: v for k, v in sorted(tally.items()) if k != "requests"},
        "problems": len(tally.problems),
        "seconds": seconds,
    }
    record_counts(f"fuzz (schemathesis, {flavor})", counts)
    print(counts)
    assert not tally.problems, "\n".join(tally.problems[:30])
