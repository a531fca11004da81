"""Webhooks a receiver can trust: every final status of a run is posted to the run's `webhook`, signed
the Standard Webhooks way (checked with the `standardwebhooks` library and with the README's own
receiver code), with langgraph.json's static headers; a receiver that fails gets the delivery again
after a backoff under the same `webhook-id`; one that refuses it, or never answers in time, leaves
it in the dead-letter queue.

The stack is the local runtime (the webhook queue polled into the `webhook` function, as Lambda's
event source mapping does), its API driven by `langgraph-sdk`, and a receiver on a free port.
Backoff starts at 1 s (template parameter `WebhookBackoffSeconds`), so retries take seconds.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from harness import ApiThread, free_port, until
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from standardwebhooks import Webhook
from stepgraph.engine import ConfigError, deliver_webhook
from stepgraph.engine.webhooks import WebhookConfig, webhook_config
from stepgraph.vocabulary import WebhookDelivery
from stepgraph_local.runtime import LocalRuntime, api_app

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "graphs" / "webhooks.json"  # headers and secret from ${{ env.LG_WEBHOOK_* }}
TOKEN = "token-" + secrets.token_hex(8)
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    answered: int


class Receiver:
    """A webhook endpoint on a free port: records each POST, answers each path as planned (then 200)."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    plan = receiver.plans.get(self.path) or [200]
                    status = plan.pop(0) if len(plan) > 1 else plan[0]
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, name="receiver", daemon=True).start()

    def url(self, *answers: int) -> str:
        """A fresh path answered with `answers` in turn (the last one from then on; default 200)."""
        path = f"/hooks/{uuid.uuid4().hex}"
        with self.lock:
            self.plans[path] = list(answers) or [200]
        return f"http://127.0.0.1:{self.http.server_address[1]}{path}"

    def received(self, url: str) -> list[Received]:
        path = "/" + url.split("/", 3)[3]
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait(self, url: str, count: int = 1, timeout: float = 15) -> list[Received]:
        return until(lambda: (got := self.received(url)) and len(got) >= count and got, timeout, f"{count} at {url}")

    def stop(self) -> None:
        self.http.shutdown()


@dataclass
class Stack:
    runtime: LocalRuntime
    client: SyncLangGraphClient
    receiver: Receiver

    def dead_letters(self, delivery_id: str, timeout: float = 10) -> dict[str, Any]:
        """The dead-letter queue's message for this delivery (taken off the queue)."""
        sqs = self.runtime.ctx.clients.sqs
        queue = self.runtime.ctx.settings.webhook_dead_letter_queue_url

        def find() -> dict[str, Any] | None:
            got = sqs.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
            )
            for message in got.get("Messages", []):
                if json.loads(message["Body"])["id"] == delivery_id:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                    return message
            return None

        message: dict[str, Any] = until(find, timeout, f"{delivery_id} in the dead-letter queue")
        return message


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LG_WEBHOOK_TOKEN", TOKEN)
        env.setenv("LG_WEBHOOK_SECRET", SECRET)
        runtime = LocalRuntime(config_path=CONFIG, parameters={"WebhookBackoffSeconds": "1"}).start()
        api = ApiThread(api_app(runtime.ctx))
        receiver = Receiver()
        try:
            yield Stack(runtime, get_sync_client(url=api.url), receiver)
        finally:
            receiver.stop()
            api.stop()
            runtime.stop()


def verified(received: Received) -> dict[str, Any]:
    """The payload, once `standardwebhooks` (the spec's reference library) accepts its signature."""
    payload: dict[str, Any] = Webhook(SECRET).verify(received.body, received.headers)
    return payload


def readme_receiver() -> Any:
    """The receiver's check the README shows, run as written."""
    readme = (ROOT / "README.md").read_text()
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verify_webhook" in block]
    scope: dict[str, Any] = {}
    exec(code, scope)
    return scope["verify_webhook"]


def test_success_and_error_are_posted_signed_with_the_configured_headers(stack: Stack) -> None:
    client, receiver = stack.client, stack.receiver
    ok, failing = receiver.url(), receiver.url()
    thread = client.threads.create()
    run = client.runs.create(thread["thread_id"], "chain", input={"items": ["x"]}, webhook=ok)
    client.runs.join(thread["thread_id"], run["run_id"])
    client.runs.wait(None, "failing", input={"items": []}, webhook=failing, raise_error=False)

    (success,) = receiver.wait(ok)
    payload = verified(success)
    assert payload["run_id"] == run["run_id"] and payload["thread_id"] == thread["thread_id"]
    assert payload["status"] == "success"
    assert payload["values"] == {"items": ["x", "a", "b", "c"]}
    assert payload["error"] is None and payload["kwargs"]["webhook"] == ok
    assert payload["assistant_id"] == run["assistant_id"]
    assert payload["run_started_at"] and payload["run_ended_at"] and payload["webhook_sent_at"]
    assert success.headers["authorization"] == f"Bearer {TOKEN}"  # ${{ env.LG_WEBHOOK_TOKEN }}
    assert success.headers["x-deployment"] == "stepgraph-tests"
    assert success.headers["content-type"] == "application/json"

    (error,) = receiver.wait(failing)
    payload = verified(error)
    assert payload["status"] == "error"
    assert payload["error"]["error"] == "ValueError" and "boom" in payload["error"]["message"]

    # The README's ten lines accept what standardwebhooks accepts, and refuse a tampered body.
    verify_webhook = readme_receiver()
    assert verify_webhook(SECRET, success.headers, success.body)["status"] == "success"
    with pytest.raises(ValueError):
        verify_webhook(SECRET, success.headers, success.body.replace(b"success", b"failure"))


def test_a_payload_too_large_for_a_message_is_delivered_whole(stack: Stack) -> None:
    """Values beyond an SQS message (256 KiB) wait in the spill bucket; the receiver gets them all."""
    url = stack.receiver.url()
    big = "x" * 300_000
    stack.client.runs.wait(None, "chain", input={"items": [big]}, webhook=url)
    (got,) = stack.receiver.wait(url)
    assert verified(got)["values"] == {"items": [big, "a", "b", "c"]}


def test_a_receiver_failing_twice_gets_the_delivery_on_the_third_try(stack: Stack) -> None:
    url = stack.receiver.url(500, 503, 200)
    stack.client.runs.wait(None, "chain", input={"items": []}, webhook=url)
    attempts = stack.receiver.wait(url, 3)
    assert [a.answered for a in attempts] == [500, 503, 200]
    assert len({a.headers["webhook-id"] for a in attempts}) == 1  # one delivery: receivers dedupe on it
    assert all(verified(a)["status"] == "success" for a in attempts)
    stamps = [int(a.headers["webhook-timestamp"]) for a in attempts]
    assert stamps[2] - stamps[0] >= 2  # backed off (1 s, then 2 s), not hammered


def test_a_receiver_down_at_first_gets_the_delivery_once_it_is_up(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused is a network error: the delivery comes back after its backoff."""
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}/late"
    caplog.set_level(logging.WARNING, logger="stepgraph.engine.webhooks")
    stack.client.runs.wait(None, "chain", input={"items": []}, webhook=url)
    until(lambda: any(url in r.getMessage() and "again in" in r.getMessage() for r in caplog.records), 10, "a retry")
    late = Receiver(port)
    try:
        (got,) = late.wait(url)
    finally:
        late.stop()
    assert verified(got)["status"] == "success"


def test_a_refused_delivery_goes_to_the_dead_letter_queue_at_once(stack: Stack) -> None:
    url = stack.receiver.url(410)
    stack.client.runs.wait(None, "chain", input={"items": []}, webhook=url)
    (attempt,) = stack.receiver.wait(url)
    message = stack.dead_letters(attempt.headers["webhook-id"])
    assert message["MessageAttributes"]["reason"]["StringValue"] == "HTTP 410"
    assert json.loads(message["Body"])["url"] == url  # the whole delivery kept: nothing lost
    assert len(stack.receiver.received(url)) == 1  # a 4xx is not retried


def test_a_delivery_out_of_time_goes_to_the_dead_letter_queue(stack: Stack) -> None:
    """The webhook function handed a delivery queued 24 hours ago whose receiver still fails:
    no further backoff fits, so the delivery goes to the dead-letter queue with the last error."""
    url = stack.receiver.url(503)
    delivery = {"id": f"msg_{uuid.uuid4().hex}", "url": url, "payload": {"run_id": "r", "status": "success"}}
    day_ago_ms = int(time.time() * 1000) - stack.runtime.ctx.settings.webhook_max_age_seconds * 1000 + 500
    record = {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "unused",
        "body": json.dumps(delivery),
        "attributes": {"ApproximateReceiveCount": "23", "SentTimestamp": str(day_ago_ms)},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }
    reply = stack.runtime.aws.client("lambda").invoke(
        FunctionName="WebhookFunction", Payload=json.dumps({"Records": [record]}).encode()
    )
    assert json.loads(reply["Payload"].read()) == {"batchItemFailures": []}
    message = stack.dead_letters(delivery["id"])
    assert message["MessageAttributes"]["reason"]["StringValue"] == "HTTP 503; gave up after 23 attempts"
    assert len(stack.receiver.received(url)) == 1


def test_cancelled_and_rolled_back_runs_send_their_webhooks(stack: Stack) -> None:
    client, receiver = stack.client, stack.receiver
    thread_id = client.threads.create()["thread_id"]

    def running(webhook: str) -> dict[str, Any]:
        run = client.runs.create(thread_id, "nap", input={"items": [], "pause": 1.0}, webhook=webhook)
        until(lambda: client.runs.get(thread_id, run["run_id"])["status"] == "running", 10, "the run to start")
        return run

    interrupted_url, rolled_back_url = receiver.url(), receiver.url()
    interrupted = running(interrupted_url)
    client.runs.cancel(thread_id, interrupted["run_id"], action="interrupt")
    rolled_back = running(rolled_back_url)
    client.runs.create(thread_id, "nap", input={"items": []}, multitask_strategy="rollback")

    (cancel,) = receiver.wait(interrupted_url)
    assert verified(cancel)["run_id"] == interrupted["run_id"]
    assert verified(cancel)["status"] == "interrupted"
    # The canceller and dispatch may both complete the rollback (idempotent): each queues the
    # webhook, under one delivery id.
    rollbacks = receiver.wait(rolled_back_url)
    assert len({r.headers["webhook-id"] for r in rollbacks}) == 1
    assert {(verified(r)["run_id"], verified(r)["status"]) for r in rollbacks} == {(rolled_back["run_id"], "rollback")}


def test_a_parked_run_posts_success_then_timeout_at_its_deadline(stack: Stack) -> None:
    """Stopped on interrupt(), the run succeeds (as the peer reports it); past its human-input
    deadline (action "end") it ends `timeout`: two ends, two deliveries."""
    url = stack.receiver.url()
    thread_id = stack.client.threads.create()["thread_id"]
    run = stack.client.runs.create(
        thread_id, "approval", input={"items": []}, webhook=url, config={"interrupt_deadline_seconds": 1}
    )
    parked, timed_out = stack.receiver.wait(url, 2)
    assert [verified(parked)["status"], verified(timed_out)["status"]] == ["success", "timeout"]
    assert verified(parked)["run_id"] == verified(timed_out)["run_id"] == run["run_id"]
    assert parked.headers["webhook-id"] != timed_out.headers["webhook-id"]


def test_a_park_delivered_twice_posts_one_delivery_id_and_the_run_still_resumes(stack: Stack) -> None:
    """Park invoked again for a run it parked (a Lambda retry): the webhook goes again under the
    same id, and the parked execution is left waiting for its resume (not abandoned)."""
    url = stack.receiver.url()
    thread_id = stack.client.threads.create()["thread_id"]
    run = stack.client.runs.create(thread_id, "approval", input={"items": []}, webhook=url)
    stack.receiver.wait(url)
    token = stack.runtime.ctx.threads.get(thread_id)["task_token"]
    event = {"run_id": run["run_id"], "thread_id": thread_id, "task_token": token}
    reply = stack.runtime.aws.client("lambda").invoke(FunctionName="ParkFunction", Payload=json.dumps(event).encode())
    assert "FunctionError" not in reply
    first, again = stack.receiver.wait(url, 2)
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert stack.client.threads.get(thread_id)["status"] == "interrupted"
    resumed = stack.client.runs.wait(thread_id, "approval", command={"resume": "yes"})
    assert "__interrupt__" not in resumed


def test_a_finish_delivered_twice_posts_one_delivery_id(stack: Stack) -> None:
    """Finish invoked again for a run it finished (a Lambda retry): the webhook goes again with
    the same `webhook-id`, so a receiver that deduplicates sees it once."""
    url = stack.receiver.url()
    thread_id = stack.client.threads.create()["thread_id"]
    run = stack.client.runs.create(thread_id, "chain", input={"items": []}, webhook=url)
    stack.client.runs.join(thread_id, run["run_id"])
    stack.receiver.wait(url)
    event = {"run_id": run["run_id"], "thread_id": thread_id, "outcome": "done"}
    reply = stack.runtime.aws.client("lambda").invoke(FunctionName="FinishFunction", Payload=json.dumps(event).encode())
    assert "FunctionError" not in reply
    first, again = stack.receiver.wait(url, 2)
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert verified(first)["status"] == verified(again)["status"] == "success"


def test_allowed_fields_restrict_the_payload(stack: Stack) -> None:
    url = stack.receiver.url()
    config = WebhookConfig(allowed_fields=frozenset({"run_id", "status"}), secret=SECRET)
    body = json.dumps({"id": "msg_fields", "url": url, "payload": {"run_id": "r", "status": "error", "values": {}}})
    outcome = deliver_webhook(
        stack.runtime.ctx, config, body, receipt_handle="unused", receive_count=1, sent_at_ms=int(time.time() * 1000)
    )
    assert outcome == WebhookDelivery.DELIVERED
    (got,) = stack.receiver.received(url)
    assert set(verified(got)) == {"run_id", "status", "webhook_sent_at"}


def test_header_templates_read_only_the_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LG_WEBHOOK_A", "1")
    monkeypatch.setenv("OTHER_SECRET", "2")
    assert webhook_config({"headers": {"X": "a=${{ env.LG_WEBHOOK_A }};"}}).headers == {"X": "a=1;"}
    with pytest.raises(ConfigError, match="does not start with"):
        webhook_config({"headers": {"X": "${{ env.OTHER_SECRET }}"}})
    assert webhook_config({"env_prefix": "OTHER_", "headers": {"X": "${{ env.OTHER_SECRET }}"}}).headers == {"X": "2"}
    with pytest.raises(ConfigError, match="whsec_"):
        webhook_config({"secret": "not base64!"})
