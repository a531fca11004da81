"""The sample events of events/ (one per function, named after its folder, as `sam local invoke -e`
takes them) and what each must do: the state it needs is seeded first, then the function handles
its event and the test checks what a user would see. Run against the handlers in-process
(test_sample_events.py) and against the built artifacts (test_build.py)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook
from stepgraph.engine import Context, base_run, create_cron, new_thread
from stepgraph.engine.graphs import system_assistant_id
from stepgraph.engine.ids import new_run_id
from stepgraph.storage import END
from stepgraph.storage.queue import queue_entry
from stepgraph_local import load_template

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def functions(template: Path) -> dict[str, str]:
    """Each function of the template, by the name of its folder (its events/ file): logical id."""
    resources = load_template(template)["Resources"]
    return {
        Path(r["Properties"]["CodeUri"]).name: name
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function"
    }


def sample_event(folder: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{folder}.json").read_text())
    return event


def http_request(event: dict[str, Any]) -> dict[str, Any]:
    """The HTTP request an API Gateway REST API proxy event (payload 1.0) stands for, as the Lambda
    Web Adapter hands it to the app: httpx.request's keyword arguments, the URL relative."""
    body = event.get("body") or ""
    content = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    query = [(k, v) for k, values in (event.get("multiValueQueryStringParameters") or {}).items() for v in values]
    skip = {"content-length", "host"}  # the client sets these for the address it sends to
    return {
        "method": event["httpMethod"],
        "url": event["path"],
        "params": query,
        "headers": {k: v for k, v in (event.get("headers") or {}).items() if k.lower() not in skip},
        "content": content,
    }


@dataclass
class Stage:
    """A deployed-like stack: the engine against its AWS, its functions, its API."""

    ctx: Context
    lambda_client: Any  # the emulated account's Lambda
    functions: dict[str, str]  # folder -> logical id
    send: Callable[..., httpx.Response]  # an HTTP request to the API function (http_request's kwargs)

    def invoke(self, folder: str, event: dict[str, Any]) -> Any:
        """Invoke the function with `event` through Lambda; its result (a function error fails)."""
        out = self.lambda_client.invoke(FunctionName=self.functions[folder], Payload=json.dumps(event).encode())
        payload = json.loads(out["Payload"].read() or b"null")
        assert "FunctionError" not in out, payload
        return payload


# ---------------------------------------------------------------- seeding
def _new_run(
    ctx: Context, thread_id: str, graph_id: str, values: dict[str, Any], run_id: str | None, due_ms: int | None = None
) -> str:
    """A thread with one pending run queued (due now, or at `due_ms`), without ringing the
    doorbell: only the test moves it."""
    new_thread(ctx, thread_id, {})
    assistant = ctx.assistants.get(system_assistant_id(graph_id))
    assert assistant is not None, f"no assistant for {graph_id}: the API creates them when it starts"
    run = base_run(thread_id, assistant, {"input": values, "stream_mode": ["values"]})
    run["run_id"] = run_id or new_run_id()
    due = due_ms if due_ms is not None else int(time.time() * 1000)
    ctx.queue.insert(run, entry=queue_entry(run["run_id"], due), tail=None, reject=False)
    return str(run["run_id"])


def _admitted_run(ctx: Context, thread_id: str, run_id: str, graph_id: str, values: dict[str, Any]) -> None:
    """As dispatch leaves a run (lease held, running), but with no execution: only the test moves it."""
    _new_run(ctx, thread_id, graph_id, values, run_id)
    state = ctx.queue.state(thread_id)
    assert state is not None and state.pending, state
    assert ctx.queue.admit(thread_id, run_id, state.pending[0], task_token=None) == "admitted"


def _step_until(stage: Stage, event: dict[str, Any], outcome: str) -> list[str]:
    """Invoke step as the state machine does (again while it says `continue`); its outcomes."""
    outcomes: list[str] = []
    while not outcomes or outcomes[-1] == "continue":
        assert len(outcomes) < 20, outcomes
        outcomes.append(stage.invoke("step", event)["status"])
    assert outcomes[-1] == outcome, outcomes
    return outcomes


def _values(ctx: Context, thread_id: str) -> dict[str, Any]:
    latest = ctx.checkpointer.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    assert latest is not None, f"thread {thread_id} has no checkpoint"
    return dict(latest.checkpoint["channel_values"])


def _ended(ctx: Context, thread_id: str, run_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = ctx.runs.get(thread_id, run_id)
        assert run is not None
        if run["status"] not in ("pending", "running") or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


# ---------------------------------------------------------------- what each function does
def dispatch(stage: Stage) -> None:
    """The doorbell of a thread with a queued run: the run is admitted and runs to the end."""
    event = sample_event("dispatch")
    thread_id = json.loads(event["Records"][0]["body"])["thread_id"]
    run_id = _new_run(stage.ctx, thread_id, "chain", {"items": ["x"]}, None)
    assert stage.invoke("dispatch", event) == {"batchItemFailures": []}
    assert stage.ctx.runs.get(thread_id, run_id)["status"] != "pending"
    assert _ended(stage.ctx, thread_id, run_id)["status"] == "success"
    assert _values(stage.ctx, thread_id)["items"] == ["x", "a", "b", "c"]


def step(stage: Stage) -> None:
    """An admitted run's supersteps: checkpointed, streamed, and the outcome for the state machine."""
    event = sample_event("step")
    thread_id, run_id = event["thread_id"], event["run_id"]
    _admitted_run(stage.ctx, thread_id, run_id, "chain", {"items": []})
    _step_until(stage, event, "done")
    assert _values(stage.ctx, thread_id)["items"] == ["a", "b", "c"]
    streamed = [e.data for e in stage.ctx.events.read(run_id) if e.event == "values"]
    assert streamed and streamed[-1]["items"] == ["a", "b", "c"]  # what runs.join_stream replays


def park(stage: Stage) -> None:
    """A run stopped on interrupt(): it succeeds, and its thread waits, interrupted, on the token."""
    event = sample_event("park")
    thread_id, run_id = event["thread_id"], event["run_id"]
    _admitted_run(stage.ctx, thread_id, run_id, "approval", {"items": []})
    _step_until(stage, {"run_id": run_id, "thread_id": thread_id}, "interrupted")
    assert stage.invoke("park", event) == {"parked": run_id}
    assert stage.ctx.runs.get(thread_id, run_id)["status"] == "success"
    assert stage.ctx.threads.get(thread_id)["status"] == "interrupted"
    state = stage.ctx.queue.state(thread_id)
    assert state is not None and state.holder is None and state.task_token == event["task_token"]


def finish(stage: Stage) -> None:
    """A run whose last step said `done`: it succeeds, its thread is free and idle, its stream ends."""
    event = sample_event("finish")
    thread_id, run_id = event["thread_id"], event["run_id"]
    _admitted_run(stage.ctx, thread_id, run_id, "chain", {"items": []})
    _step_until(stage, {"run_id": run_id, "thread_id": thread_id}, "done")
    assert stage.invoke("finish", event) == {"resume_run_id": None}
    assert stage.ctx.runs.get(thread_id, run_id)["status"] == "success"
    assert stage.ctx.threads.get(thread_id)["status"] == "idle"
    state = stage.ctx.queue.state(thread_id)
    assert state is not None and state.holder is None
    assert stage.ctx.events.read(run_id)[-1].event == END


def api(stage: Stage) -> None:
    """`client.runs.wait(None, "chain", input=...)` with the deployment's API key: queued,
    dispatched, run, and answered."""
    request = http_request(sample_event("api"))
    # The deployment's key (the template's secret) is the one the sample request carries.
    secret = stage.ctx.settings.api_key_secret_arn
    stage.ctx.clients.secretsmanager.put_secret_value(SecretId=secret, SecretString=request["headers"]["x-api-key"])
    response = stage.send(**request)
    assert response.status_code == 200, response.text
    assert response.json() == {"items": ["sample", "a", "b", "c"]}


def reaper(stage: Stage) -> None:
    """The run's execution was stopped from outside before Finish (EventBridge's status change):
    the run ends `error` with the execution's error, its stream ends, its thread is free."""
    event = sample_event("reaper")
    run_input = json.loads(event["detail"]["input"])
    thread_id, run_id = run_input["thread_id"], run_input["run_id"]
    _admitted_run(stage.ctx, thread_id, run_id, "chain", {"items": []})  # its execution, named after it
    assert stage.invoke("reaper", event) == {"reaped": run_id}
    run = stage.ctx.runs.get(thread_id, run_id)
    assert run is not None and run["status"] == "error"
    assert run["error"] == {"error": event["detail"]["error"], "message": event["detail"]["cause"]}
    assert stage.ctx.threads.get(thread_id)["status"] == "error"
    state = stage.ctx.queue.state(thread_id)
    assert state is not None and state.holder is None
    assert stage.ctx.events.read(run_id)[-1].event == END
    assert stage.invoke("reaper", event) == {"reaped": None}  # delivered again: nothing more


def sweeper(stage: Stage) -> None:
    """A queued run whose doorbell was lost, overdue on a free thread: the schedule's sweep rings
    again, and the run is admitted and runs."""
    event = sample_event("sweeper")
    thread_id = str(uuid.uuid4())
    overdue = int(time.time() * 1000) - int(stage.ctx.settings.lost_doorbell_seconds * 1000) - 60_000
    run_id = _new_run(stage.ctx, thread_id, "chain", {"items": ["late"]}, None, due_ms=overdue)
    assert stage.invoke("sweeper", event)["rung"] >= 1
    assert _ended(stage.ctx, thread_id, run_id)["status"] == "success"
    assert _values(stage.ctx, thread_id)["items"] == ["late", "a", "b", "c"]


def cron(stage: Stage) -> None:
    """A thread cron's schedule fires (EventBridge Scheduler delivers the schedule's Input): the
    cron's run is queued on its thread and succeeds, its next fire is armed, and the same fire
    delivered again creates no second run."""
    event = sample_event("cron")
    thread_id = str(uuid.uuid4())
    new_thread(stage.ctx, thread_id, {})
    cron = create_cron(
        stage.ctx,
        {
            "cron_id": event["cron_id"],
            "assistant_id": system_assistant_id("chain"),
            "thread_id": thread_id,
            "schedule": "43 19 * * *",
            "timezone": None,
            "end_time": None,
            "enabled": True,
            "metadata": {},
            "payload": {"input": {"items": ["cron"]}, "multitask_strategy": "enqueue"},
        },
    )
    # As if armed the day before: this fire is the one it waits for.
    stage.ctx.crons.replace({**cron, "next_run_date": event["fire_at"]})
    fired = stage.invoke("cron", event)
    assert fired["thread_id"] == thread_id, fired
    assert _ended(stage.ctx, thread_id, fired["run_id"])["status"] == "success"
    assert _values(stage.ctx, thread_id)["items"] == ["cron", "a", "b", "c"]
    assert stage.invoke("cron", event) == {"skipped": "duplicate", **fired}
    assert [r["run_id"] for r in stage.ctx.runs.list(thread_id)] == [fired["run_id"]]
    armed = stage.ctx.crons.get(event["cron_id"])
    assert armed is not None and armed["next_run_date"] > event["fire_at"]


def webhook(stage: Stage) -> None:
    """A queued delivery (its URL pointed at a receiver here, queued just now): posted once, with
    its delivery id, signed with the deployment's secret (Secrets Manager, `whsec_` + its value)."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            received.append((dict(self.headers.items()), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        event = sample_event("webhook")
        record = event["Records"][0]
        delivery = json.loads(record["body"])
        delivery["url"] = f"http://127.0.0.1:{server.server_address[1]}/hook"
        record["body"] = json.dumps(delivery)
        record["attributes"]["SentTimestamp"] = str(int(time.time() * 1000))
        assert stage.invoke("webhook", event) == {"batchItemFailures": []}
    finally:
        server.shutdown()
    ((headers, body),) = received
    assert headers["webhook-id"] == delivery["id"]
    arn = stage.ctx.settings.webhook_secret_arn
    secret = stage.ctx.clients.secretsmanager.get_secret_value(SecretId=arn)["SecretString"]
    payload = Webhook("whsec_" + secret).verify(body, headers)
    assert payload["status"] == "success" and payload["values"] == delivery["payload"]["values"]


SCENARIOS: dict[str, Callable[[Stage], None]] = {
    "api": api,
    "dispatch": dispatch,
    "step": step,
    "park": park,
    "finish": finish,
    "reaper": reaper,
    "sweeper": sweeper,
    "cron": cron,
    "webhook": webhook,
}
