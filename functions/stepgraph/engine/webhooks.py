"""Webhooks: a run's end, posted to the URL the run names; signed, retried, dead-lettered.

A run that names a `webhook` and reaches a final status (success, error, timeout, interrupted,
or rolled back) queues one delivery on the webhook queue (SQS standard) with `queue_webhook`:
the peer's payload, built as the run ends, under a delivery id derived from the run and that
status. Every copy of a delivery (a finish that ran twice, each retry) carries that id as
`webhook-id`, so receivers deduplicate on it: delivery is at least once.

The `webhook` function posts each delivery with `deliver_webhook`, signed the Standard Webhooks
way (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`). A network error, a timeout, a 5xx or a 429 leaves the message on the
queue, invisible for an exponential backoff (ChangeMessageVisibility), for as long as
`webhook_max_age_seconds` allows since it was queued; then, or at once on any other answer that
is not 2xx (a 4xx, a redirect that would drop the POST), it goes to the dead-letter queue with the
reason. So does a URL the `webhooks.url` policy refuses (`webhook_urls`), before any request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from opentelemetry.trace import SpanKind

from stepgraph import serde, tracing
from stepgraph.engine.errors import ConfigError, WebhookUrlRefused
from stepgraph.engine.webhook_urls import (
    MAX_REDIRECTS,
    WebhookUrlPolicy,
    check_webhook_url,
    guarded_pool,
    webhook_url_policy,
)
from stepgraph.storage import now_iso
from stepgraph.vocabulary import WebhookDelivery, WebhookStatus

if TYPE_CHECKING:
    from stepgraph.engine.context import Context

__all__ = [
    "WebhookConfig",
    "deliver_webhook",
    "delivery_id",
    "queue_webhook",
    "sign_webhook",
    "webhook_config",
]

logger = logging.getLogger(__name__)

# What `${{ env.VAR }}` in langgraph.json's `webhooks` reads, and the prefix VAR must have (the peer's).
_ENV_TEMPLATE = re.compile(r"\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
DEFAULT_ENV_PREFIX = "LG_WEBHOOK_"
_SECRET_PREFIX = "whsec_"
# The peer's run row, the payload's base: the same fields the API shows for a run.
_RUN_FIELDS = (
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "langsmith_session_name",
)
# SQS takes messages up to 256 KiB: a larger delivery waits in the spill bucket, the message names it.
_MAX_MESSAGE_BYTES = 240 * 1024
_SPILL_PREFIX = "webhooks/"
# The peer's timeouts: 5 s to connect, 30 s for the answer.
_CONNECT_SECONDS, _READ_SECONDS = 5.0, 30.0
_ID_NAMESPACE = uuid.UUID("0b7c1f0e-4a8e-4b59-9f0e-5e2a3c0d6b11")


@dataclass(frozen=True)
class WebhookConfig:
    """langgraph.json's `webhooks`, resolved: static headers, the payload's allowed fields (None:
    all), the signing secret (`whsec_<base64>`; None: the deployment's, from Secrets Manager) and
    the URL policy (`url`)."""

    headers: dict[str, str] = field(default_factory=dict)
    allowed_fields: frozenset[str] | None = None
    secret: str | None = None
    url: WebhookUrlPolicy = field(default_factory=WebhookUrlPolicy)


def webhook_config(raw: Any) -> WebhookConfig:
    """Read langgraph.json's `webhooks` (after its `env` is loaded). Raises ConfigError, so a
    server does not start with headers or a secret it could not send."""
    if raw is None:
        return WebhookConfig()
    if not isinstance(raw, dict):
        raise ConfigError("'webhooks' must be an object")
    prefix = raw.get("env_prefix", DEFAULT_ENV_PREFIX)
    if not isinstance(prefix, str):
        raise ConfigError("webhooks.env_prefix must be a string")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError("webhooks.headers must map header names to strings")
    allowed = raw.get("allowed_fields")
    if allowed is not None and not (isinstance(allowed, list) and all(isinstance(f, str) for f in allowed)):
        raise ConfigError("webhooks.allowed_fields must be a list of field names")
    secret = raw.get("secret")
    if secret is not None:
        if not isinstance(secret, str):
            raise ConfigError("webhooks.secret must be a string")
        secret = _resolve(secret, prefix, "webhooks.secret")
        _signing_key(secret)  # raises ConfigError
    return WebhookConfig(
        headers={str(name): _resolve(value, prefix, f"webhooks.headers.{name}") for name, value in headers.items()},
        allowed_fields=frozenset(allowed) if allowed is not None else None,
        secret=secret,
        url=WebhookUrlPolicy.from_config(raw.get("url")),
    )


def _resolve(template: str, prefix: str, where: str) -> str:
    """`${{ env.VAR }}` replaced by VAR's value; VAR must start with `prefix` and be set."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith(prefix):
            raise ConfigError(f"{where}: environment variable {name} does not start with {prefix!r} (env_prefix)")
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_TEMPLATE.sub(value, template)


def _signing_key(secret: str) -> bytes:
    """The HMAC key a `whsec_<base64>` secret stands for (Standard Webhooks)."""
    try:
        key = base64.b64decode(secret.removeprefix(_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("a webhook secret must be 'whsec_' followed by base64") from None
    if len(key) < 16:
        raise ConfigError("a webhook secret must hold at least 16 bytes (24 base64 characters)")
    return key


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def delivery_id(run_id: str, status: str) -> str:
    """One id per run and final status: every copy of that delivery carries it."""
    return "msg_" + uuid.uuid5(_ID_NAMESPACE, f"{run_id}:{status}").hex


# ---------------------------------------------------------------- queueing (where runs end)
def queue_webhook(ctx: Context, run: dict[str, Any], status: WebhookStatus) -> None:
    """The run ended `status`: queue its webhook, if it names one. Safe to call again for the
    same end (a retried finish): the copy carries the same delivery id."""
    url = (run.get("kwargs") or {}).get("webhook")
    if not url:
        return
    queue_url = ctx.settings.webhook_queue_url
    if not queue_url:
        logger.warning("run %s names a webhook but no webhook queue is configured; not sent", run["run_id"])
        return
    msg_id = delivery_id(run["run_id"], status)
    delivery: dict[str, Any] = {"id": msg_id, "url": url, "payload": _payload(ctx, run, status)}
    trace_context = tracing.carrier()  # the ending hop's span: the delivery's span goes under it
    if trace_context:
        delivery["trace"] = trace_context
    body = serde.dumps_str(delivery)
    if len(body.encode()) > _MAX_MESSAGE_BYTES:
        key = f"{_SPILL_PREFIX}{msg_id}.json"
        ctx.clients.s3.put_object(Bucket=ctx.settings.spill_bucket, Key=key, Body=body.encode())
        body = serde.dumps_str({"id": msg_id, "url": url, "spilled": key, "trace": delivery.get("trace")})
    ctx.clients.sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    logger.info("run %s ended %s: webhook %s queued", run["run_id"], status, msg_id)


def _payload(ctx: Context, run: dict[str, Any], status: WebhookStatus) -> dict[str, Any]:
    """The peer's payload: the run row, its final status and times, the thread's values, the error."""
    payload = {name: run.get(name) for name in _RUN_FIELDS}
    payload.update(
        status=str(status),
        run_started_at=run.get("started_at"),
        run_ended_at=now_iso(),
        values=_values(ctx, run),
        error=run.get("error") if status == WebhookStatus.ERROR else None,
    )
    return payload


def _values(ctx: Context, run: dict[str, Any]) -> Any:
    """The thread's values as the run left them (its last checkpoint's), or None."""
    from stepgraph.engine.state import get_thread_state

    graph_id = run.get("graph_id")
    if not graph_id or graph_id not in ctx.graphs.specs:
        return None
    try:
        snapshot = get_thread_state(ctx, run["thread_id"], graph_id)
    except Exception:  # the webhook still goes, without values: the end matters more than the state
        logger.exception("run %s: the thread's values could not be read for its webhook", run["run_id"])
        return None
    return serde.to_jsonable(snapshot.values) if snapshot.values is not None else None


# ---------------------------------------------------------------- delivery (the webhook function)
@dataclass(frozen=True)
class _Attempt:
    outcome: WebhookDelivery
    reason: str = ""


def deliver_webhook(
    ctx: Context,
    config: WebhookConfig,
    body: str,
    *,
    receipt_handle: str,
    receive_count: int,
    sent_at_ms: int,
) -> WebhookDelivery:
    """Post one queued delivery (an SQS message: its body, receipt handle, receive count and
    when it was queued). RETRY: the message was made invisible for its backoff; the caller
    reports it failed so it comes back. DEAD: it is in the dead-letter queue; the caller lets
    it go, as after DELIVERED."""
    delivery = serde.loads(body)
    attributes = {"webhook.id": delivery.get("id"), "attempt": receive_count}
    with tracing.span("webhook", parent=delivery.get("trace"), kind=SpanKind.PRODUCER, attributes=attributes) as span:
        outcome = _deliver(
            ctx,
            config,
            body,
            delivery,
            receipt_handle=receipt_handle,
            receive_count=receive_count,
            sent_at_ms=sent_at_ms,
        )
        span.set_attribute("outcome", str(outcome))
    return outcome


def _deliver(
    ctx: Context,
    config: WebhookConfig,
    body: str,
    delivery: dict[str, Any],
    *,
    receipt_handle: str,
    receive_count: int,
    sent_at_ms: int,
) -> WebhookDelivery:
    if "spilled" in delivery:
        obj = ctx.clients.s3.get_object(Bucket=ctx.settings.spill_bucket, Key=delivery["spilled"])
        delivery = serde.loads(obj["Body"].read())
    attempt = _post(ctx, config, delivery)
    if attempt.outcome == WebhookDelivery.DELIVERED:
        logger.info("webhook %s delivered to %s (attempt %d)", delivery["id"], delivery["url"], receive_count)
        return attempt.outcome
    if attempt.outcome == WebhookDelivery.RETRY:
        delay = _backoff(ctx, receive_count)
        age = time.time() - sent_at_ms / 1000
        if age + delay <= ctx.settings.webhook_max_age_seconds:
            logger.warning(
                "webhook %s to %s failed (%s), attempt %d; again in %d s",
                delivery["id"],
                delivery["url"],
                attempt.reason,
                receive_count,
                delay,
            )
            ctx.clients.sqs.change_message_visibility(
                QueueUrl=ctx.settings.webhook_queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay
            )
            return WebhookDelivery.RETRY
        attempt = _Attempt(WebhookDelivery.DEAD, f"{attempt.reason}; gave up after {receive_count} attempts")
    logger.error(
        "webhook %s to %s not delivered: %s; sent to the dead-letter queue",
        delivery["id"],
        delivery["url"],
        attempt.reason,
    )
    ctx.clients.sqs.send_message(
        QueueUrl=ctx.settings.webhook_dead_letter_queue_url,
        MessageBody=body,
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": attempt.reason[:1000] or "unknown"},
            "attempts": {"DataType": "Number", "StringValue": str(receive_count)},
        },
    )
    return WebhookDelivery.DEAD


def _backoff(ctx: Context, receive_count: int) -> int:
    """Seconds before the next attempt: exponential from the base, capped, with jitter (whole
    seconds: SQS visibility)."""
    settings = ctx.settings
    ceiling = min(settings.webhook_max_backoff_seconds, settings.webhook_backoff_seconds * 2 ** (receive_count - 1))
    delay: int = max(1, round(ceiling * random.uniform(0.75, 1.0)))
    return delay


def _post(ctx: Context, config: WebhookConfig, delivery: dict[str, Any]) -> _Attempt:

    payload = dict(delivery["payload"])
    if config.allowed_fields is not None:
        payload = {k: v for k, v in payload.items() if k in config.allowed_fields}
    payload["webhook_sent_at"] = now_iso()
    content = serde.dumps(payload)
    timestamp = int(time.time())
    headers = {
        **config.headers,
        "Content-Type": "application/json",
        "webhook-id": delivery["id"],
        "webhook-timestamp": str(timestamp),
        **tracing.carrier(),  # traceparent (and X-Amzn-Trace-Id): the receiver continues the run's trace
    }
    secret = _secret(ctx, config)
    if secret:
        headers["webhook-signature"] = sign_webhook(secret, delivery["id"], timestamp, content)
    return _send(webhook_url_policy(ctx, config.url), delivery["url"], content, headers)


def _send(policy: WebhookUrlPolicy, url: str, content: bytes, headers: dict[str, str]) -> _Attempt:
    """POST to `url` through connections that reach only addresses the policy passes; a 307 or
    308 (which keep the POST) is followed, its target checked whole, up to MAX_REDIRECTS times."""
    import urllib3

    for hop in range(MAX_REDIRECTS + 1):
        where = f" (redirected to {url})" if hop else ""
        try:
            check_webhook_url(policy, url, resolve=False)  # the addresses: at connect
            response = guarded_pool(policy).request(
                "POST",
                url,
                body=content,
                headers=headers,
                timeout=urllib3.Timeout(connect=_CONNECT_SECONDS, read=_READ_SECONDS),
                retries=False,
                redirect=False,
            )
        except WebhookUrlRefused as exc:  # the policy will refuse it again: no retry, no request sent
            return _Attempt(WebhookDelivery.DEAD, f"refused{where}: {exc}")
        except urllib3.exceptions.LocationValueError as exc:  # not a URL we can post to: never will be
            return _Attempt(WebhookDelivery.DEAD, f"invalid URL{where}: {exc}")
        except urllib3.exceptions.HTTPError as exc:  # connection refused or reset, timeout, TLS, DNS
            return _Attempt(WebhookDelivery.RETRY, f"{type(exc).__name__}{where}: {exc}")
        status = response.status
        if 200 <= status < 300:
            return _Attempt(WebhookDelivery.DELIVERED)
        if status == 429 or status >= 500:
            return _Attempt(WebhookDelivery.RETRY, f"HTTP {status}{where}")
        location = response.headers.get("Location")
        if status in (307, 308) and location:
            url = urljoin(url, location)
            continue
        if 300 <= status < 400:
            return _Attempt(
                WebhookDelivery.DEAD, f"HTTP {status}{where} (only 307 and 308, which keep the POST, are followed)"
            )
        return _Attempt(WebhookDelivery.DEAD, f"HTTP {status}{where}")
    return _Attempt(WebhookDelivery.DEAD, f"more than {MAX_REDIRECTS} redirects (last to {url})")


_secrets: dict[str, str] = {}
_lock = threading.Lock()


def _secret(ctx: Context, config: WebhookConfig) -> str | None:
    """langgraph.json's secret, else the deployment's (Secrets Manager, read once per process)."""
    if config.secret:
        return config.secret
    arn = ctx.settings.webhook_secret_arn
    if not arn:
        return None
    with _lock:
        if arn not in _secrets:
            value = ctx.clients.secretsmanager.get_secret_value(SecretId=arn)["SecretString"]
            _secrets[arn] = value if value.startswith(_SECRET_PREFIX) else _SECRET_PREFIX + value
        return _secrets[arn]
