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
import dataclasses
import json
import logging
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from harness import ApiThread, free_port, until
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from standardwebhooks import Webhook
from stepgraph.engine import ConfigError, Context, WebhookUrlPolicy, deliver_webhook
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

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, list[int]] = {}
        self.locations: dict[str, str] = {}  # what a path's 3xx answers point to
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
                    location = receiver.locations.get(self.path)
                self.send_response(status)
                if location and 300 <= status < 400:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.http.daemon_threads = True
        if tls is not None:
            self.http.socket = tls.wrap_socket(self.http.socket, server_side=True)
        threading.Thread(target=self.http.serve_forever, name="receiver", daemon=True).start()

    def url(self, *answers: int, location: str | None = None, host: str = "127.0.0.1") -> str:
        """A fresh path answered with `answers` in turn (the last one from then on; default 200);
        a 3xx answer points to `location`."""
        path = f"/hooks/{uuid.uuid4().hex}"
        with self.lock:
            self.plans[path] = list(answers) or [200]
            if location:
                self.locations[path] = location
        return f"http://{host}:{self.http.server_address[1]}{path}"

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


# ---------------------------------------------------------------- the URL policy (SSRF guard)
# Each SSRF case the issue counts is a test below or a parametrized id of
# tests/unit/test_webhook_urls.py. DNS is not ours: `socket.getaddrinfo` is replaced by a table.
@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Names -> the answers the resolver gives in turn (the last one from then on); each lookup
    of a name is counted in `lookups`."""
    answers: dict[str, list[list[str]]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            plan = answers[host]
            addresses = plan.pop(0) if len(plan) > 1 else plan[0]
            LOOKUPS.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]
        return real(host, port, *args, **kwargs)

    LOOKUPS.clear()
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


LOOKUPS: list[str] = []
LOCAL_ONLY = WebhookUrlPolicy(require_https=False, disable_loopback=False, disable_private_ips=True)


def deliver(stack: Stack, url: str, policy: WebhookUrlPolicy, *, hopeless: bool = False) -> tuple[str, WebhookDelivery]:
    """One delivery to `url` under `policy`, as the webhook function makes it: (its id, the outcome).
    `hopeless`: queued a day ago, so a failure that would be retried goes to the dead-letter queue."""
    msg_id = f"msg_{uuid.uuid4().hex}"
    body = json.dumps({"id": msg_id, "url": url, "payload": {"run_id": "r", "status": "success"}})
    sent = time.time() - (stack.runtime.ctx.settings.webhook_max_age_seconds if hopeless else 0)
    config = WebhookConfig(secret=SECRET, url=policy)
    outcome = deliver_webhook(
        stack.runtime.ctx, config, body, receipt_handle="unused", receive_count=1, sent_at_ms=int(sent * 1000)
    )
    return msg_id, outcome


def test_ssrf_the_webhook_function_refuses_the_metadata_address_unsent(stack: Stack) -> None:
    """Refused at delivery too (a run queued before the policy changed, a message written by hand):
    the delivery goes to the dead-letter queue with the reason, and is not retried."""
    delivery = {"id": f"msg_{uuid.uuid4().hex}", "url": "http://169.254.169.254/latest/meta-data/iam/", "payload": {}}
    record = {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "unused",
        "body": json.dumps(delivery),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }
    reply = stack.runtime.aws.client("lambda").invoke(
        FunctionName="WebhookFunction", Payload=json.dumps({"Records": [record]}).encode()
    )
    assert json.loads(reply["Payload"].read()) == {"batchItemFailures": []}
    reason = stack.dead_letters(delivery["id"])["MessageAttributes"]["reason"]["StringValue"]
    assert reason == "refused: webhook host blocked: 169.254.169.254, a cloud metadata address"


def test_ssrf_a_name_resolving_to_loopback_is_refused_when_loopback_is_disabled(
    stack: Stack, dns: dict[str, list[list[str]]]
) -> None:
    dns["hooks.example.test"] = [["127.0.0.1"]]
    url = stack.receiver.url(host="hooks.example.test")
    msg_id, outcome = deliver(stack, url, WebhookUrlPolicy(require_https=False, disable_loopback=True))
    assert outcome == WebhookDelivery.DEAD
    reason = stack.dead_letters(msg_id)["MessageAttributes"]["reason"]["StringValue"]
    assert "hooks.example.test resolves to 127.0.0.1, a loopback address" in reason
    assert stack.receiver.received(url) == []  # no request sent

    # Allowed by langgraph.json, the same name is delivered to the address it resolved to, with
    # the URL's host in `Host`.
    _, outcome = deliver(stack, url, LOCAL_ONLY)
    assert outcome == WebhookDelivery.DELIVERED
    (got,) = stack.receiver.received(url)
    assert got.headers["host"] == url.split("/")[2] and verified(got)["status"] == "success"


def test_ssrf_the_address_checked_is_the_address_connected_to(stack: Stack, dns: dict[str, list[list[str]]]) -> None:
    """DNS rebinding: a name that answers a passing address, then a refused one. A delivery looks
    the name up once and connects to that very answer; it never asks again."""
    dns["flip.example.test"] = [["127.0.0.1"], ["10.9.9.9"]]
    url = stack.receiver.url(host="flip.example.test")
    _, outcome = deliver(stack, url, LOCAL_ONLY)
    assert outcome == WebhookDelivery.DELIVERED and LOOKUPS == ["flip.example.test"]
    assert len(stack.receiver.received(url)) == 1

    dns["flop.example.test"] = [["10.9.9.9"], ["127.0.0.1"]]
    msg_id, outcome = deliver(stack, stack.receiver.url(host="flop.example.test"), LOCAL_ONLY)
    assert outcome == WebhookDelivery.DEAD
    reason = stack.dead_letters(msg_id)["MessageAttributes"]["reason"]["StringValue"]
    assert "resolves to 10.9.9.9, a private address" in reason


def test_ssrf_a_redirect_to_a_private_address_is_refused(stack: Stack) -> None:
    """307 and 308 keep the POST: followed, each hop checked whole (the metadata address and a
    private one refused); 301/302/303 would turn it into a GET without the body: not followed."""
    receiver = stack.receiver
    to_private = receiver.url(307, location="http://10.20.30.40/hook")
    msg_id, outcome = deliver(stack, to_private, LOCAL_ONLY)
    assert outcome == WebhookDelivery.DEAD
    reason = stack.dead_letters(msg_id)["MessageAttributes"]["reason"]["StringValue"]
    assert reason == (
        "refused (redirected to http://10.20.30.40/hook): webhook host blocked: 10.20.30.40, a private address"
        " (webhooks.url.disable_private_ips is true)"
    )
    to_metadata = receiver.url(308, location="http://169.254.169.254/latest/meta-data/")
    msg_id, outcome = deliver(stack, to_metadata, WebhookUrlPolicy(disable_loopback=False, disable_private_ips=False))
    reason = stack.dead_letters(msg_id)["MessageAttributes"]["reason"]["StringValue"]
    assert "(redirected to http://169.254.169.254/latest/meta-data/)" in reason and "cloud metadata" in reason
    assert len(receiver.received(to_private)) == len(receiver.received(to_metadata)) == 1

    final = receiver.url()
    _, outcome = deliver(stack, receiver.url(308, location=final), LOCAL_ONLY)
    assert outcome == WebhookDelivery.DELIVERED
    (got,) = receiver.received(final)
    assert verified(got)["status"] == "success"  # the same signed body, re-posted

    msg_id, outcome = deliver(stack, receiver.url(302, location=receiver.url()), LOCAL_ONLY)
    assert outcome == WebhookDelivery.DEAD
    assert "HTTP 302" in stack.dead_letters(msg_id)["MessageAttributes"]["reason"]["StringValue"]


def test_tls_is_checked_against_the_urls_host_while_connecting_to_the_checked_address(
    stack: Stack, dns: dict[str, list[list[str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # what the default context trusts
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("hooks.example.test").configure_cert(tls)
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: names.append(name)
    secure = Receiver(tls=tls)
    try:
        dns["hooks.example.test"] = dns["other.example.test"] = [["127.0.0.1"]]
        policy = WebhookUrlPolicy.from_config({"disable_loopback": False, "allowed_domains": ["*.example.test"]})
        url = secure.url(host="hooks.example.test").replace("http://", "https://")
        _, outcome = deliver(stack, url, policy)
        assert outcome == WebhookDelivery.DELIVERED and names == ["hooks.example.test"]
        (got,) = secure.received(url)
        assert got.headers["host"] == url.split("/")[2]

        # The same address under a name the certificate does not carry: refused by TLS.
        msg_id, outcome = deliver(stack, url.replace("hooks.", "other."), policy, hopeless=True)
        assert outcome == WebhookDelivery.DEAD
        assert "CERTIFICATE_VERIFY_FAILED" in stack.dead_letters(msg_id)["MessageAttributes"]["reason"]["StringValue"]
    finally:
        secure.stop()


def routes_taking_a_webhook(
    client: SyncLangGraphClient, thread_id: str, cron_id: str, webhook: str
) -> dict[str, Callable[[], Any]]:
    """Each SDK call that names a webhook, by name."""
    body: dict[str, Any] = {"input": {"items": []}, "webhook": webhook}
    return {
        "runs.create": lambda: client.runs.create(thread_id, "chain", **body),
        "runs.wait": lambda: client.runs.wait(thread_id, "chain", **body),
        "runs.stream": lambda: list(client.runs.stream(thread_id, "chain", **body)),
        "stateless create": lambda: client.runs.create(None, "chain", **body),
        "stateless wait": lambda: client.runs.wait(None, "chain", **body),
        "stateless stream": lambda: list(client.runs.stream(None, "chain", **body)),
        # One good run and one refused: the batch creates neither.
        "runs.create_batch": lambda: client.runs.create_batch(
            [{"assistant_id": "chain", "input": {"items": []}}, {"assistant_id": "chain", **body}]
        ),
        "crons.create": lambda: client.crons.create("chain", schedule="0 0 1 1 *", webhook=webhook),
        "crons.create_for_thread": lambda: client.crons.create_for_thread(
            thread_id, "chain", schedule="0 0 1 1 *", webhook=webhook
        ),
        "crons.update": lambda: client.crons.update(cron_id, webhook=webhook),
    }


def test_ssrf_a_deployed_api_refuses_such_webhooks_with_422_writing_nothing(
    stack: Stack, dns: dict[str, list[list[str]]]
) -> None:
    """Deployed defaults (no `webhooks.url`, not `stepgraph dev`): loopback refused too. Every route
    that takes a `webhook` answers 422 `{"detail": ...}` and creates no run, thread or cron."""
    dns["rebind.example.test"] = [["127.0.0.1"]]
    ctx = Context(dataclasses.replace(stack.runtime.ctx.settings, webhook_local_network=False))
    api = ApiThread(api_app(ctx))
    try:
        client = get_sync_client(url=api.url)
        thread_id = client.threads.create()["thread_id"]
        cron = client.crons.create("chain", schedule="0 0 1 1 *", input={"items": []})
        threads, crons = client.threads.count(), client.crons.count()
        for webhook, reason in (
            ("http://rebind.example.test/hook", "rebind.example.test resolves to 127.0.0.1, a loopback address"),
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a cloud metadata address"),
        ):
            for name, call in routes_taking_a_webhook(client, thread_id, cron["cron_id"], webhook).items():
                with pytest.raises(httpx.HTTPStatusError) as refused:
                    call()
                assert refused.value.response.status_code == 422, name
                assert reason in refused.value.response.json()["detail"], name
        assert client.runs.list(thread_id) == []
        assert (client.threads.count(), client.crons.count()) == (threads, crons)
        (unchanged,) = [c for c in client.crons.search(limit=1000) if c["cron_id"] == cron["cron_id"]]
        assert "webhook" not in unchanged["payload"]
        client.crons.delete(cron["cron_id"])
    finally:
        api.stop()
