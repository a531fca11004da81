"""The local runtime: template.yaml's stack inside moto, the real handlers in-process, our own
SQS pollers feeding each queue's consumer (`dispatch`, `webhook`), the template's event rules and
schedules (`events`: the reaper, the sweeper), and the API under uvicorn. `stepgraph dev` runs
one of these."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import iam
from .template import EXAMPLES_CONFIG, TEMPLATE, load_template
from .ttl import TtlSweeper

if TYPE_CHECKING:
    from stepgraph.engine.context import Context

    from .aws import LocalAWS
    from .persistence import AbortedExecution, Persistence

logger = logging.getLogger("stepgraph.local")


class PortInUse(RuntimeError):
    pass


def check_port(host: str, port: int) -> None:
    """Fail fast, in one line, when the port is taken (2024 often is)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(
                    f"port {port} on {host} is already in use; pick another with --port (e.g. --port {port + 100})"
                ) from None
            raise


class QueuePoller(threading.Thread):
    """Feeds an SQS queue to a Lambda the way an event-source mapping does: batches of up to 10,
    partial batch failures left for redelivery after the visibility timeout.

    moto's long poll waits on a condition that `send_message` notifies, so an idle poller sleeps
    until a message arrives instead of polling on a timer.
    """

    def __init__(self, queue_url: str, function_name: str, client: Callable[[str], Any], *, wait_seconds: int = 1):
        """`client(service)` gives one of stepgraph's clients for the emulated account."""
        super().__init__(name=f"poller-{function_name}", daemon=True)
        self.queue_url, self.function_name = queue_url, function_name
        self.wait_seconds = wait_seconds
        self.sqs = client("sqs")
        self.lambda_ = client("lambda")
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:  # keep feeding: a failed batch is redelivered by SQS
                if not self._stopping.is_set():
                    logger.exception("poller %s failed", self.function_name)
                    time.sleep(0.2)

    def poll_once(self) -> int:
        resp = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = resp.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        out = self.lambda_.invoke(FunctionName=self.function_name, Payload=json.dumps(event).encode())
        payload = json.loads(out["Payload"].read() or b"{}")
        if out.get("FunctionError"):
            logger.error("%s failed: %s", self.function_name, payload)
            return 0
        failed = {f["itemIdentifier"] for f in (payload or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i : i + 10])],
            )
        return len(done)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.sqs.meta.region_name,
        }


@dataclass
class LocalRuntime:
    """Everything but HTTP: the emulated stack, the engine context and the queue poller."""

    config_path: Path = EXAMPLES_CONFIG
    step_mode: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    ttl_sweep_seconds: float = float(os.environ.get("STEPGRAPH_LOCAL_TTL_SWEEP_SECONDS", "60"))
    # The template's schedules (the lost-doorbell sweeper's rate(1 minute)) fire this often
    # instead; None: STEPGRAPH_LOCAL_SCHEDULE_SECONDS, else their own rate.
    schedule_seconds: float | None = None
    # Set: the emulated AWS is kept in this folder and restored from it (`persistence`);
    # None: in memory only, gone with the process.
    data_dir: Path | None = None

    def start(self) -> LocalRuntime:
        from stepgraph.api.assistants import ensure_system_assistants
        from stepgraph.engine.context import Context, set_context
        from stepgraph.settings import Settings
        from stepgraph.storage.events import InProcessNotifier

        from .aws import LocalAWS

        parameters = {"LangGraphConfig": str(Path(self.config_path).resolve()), **self.parameters}
        if self.step_mode:
            parameters["StepMode"] = self.step_mode
        self.aws = LocalAWS(TEMPLATE, parameters=parameters, schedule_seconds=self.schedule_seconds)
        self.aws.start()
        from .persistence import attach

        self.persistence: Persistence | None = None
        aborted: list[AbortedExecution] = []
        if self.data_dir is not None:
            try:
                self.persistence, aborted = attach(self.data_dir)
            except BaseException:
                self.aws.stop()
                raise
        # Open without an API key, as `langgraph dev` is; a project's auth.py still applies. Webhooks
        # may reach loopback and private addresses unless langgraph.json's `webhooks.url` says not.
        settings = dataclasses.replace(
            Settings.from_env(), sign_requests=False, require_api_key=False, webhook_local_network=True
        )
        self.ctx = Context(settings, notifier=InProcessNotifier())
        with iam.acting_as(api_function()):  # on AWS, the API's start-up does this
            ensure_system_assistants(self.ctx)  # imports the graphs: a broken langgraph.json fails here
        set_context(self.ctx)
        queue_url = self.ctx.settings.run_queue_url
        self.poller = QueuePoller(queue_url, _function_for_queue(self.aws, queue_url), self.aws.client)
        self.poller.start()
        # Every other queue a function consumes (the webhook queue): one poller each.
        self.pollers = [
            QueuePoller(url, function, self.aws.client)
            for url, function in queue_consumers(self.aws).items()
            if url != queue_url
        ]
        for poller in self.pollers:
            poller.start()
        # moto never applies DynamoDB TTL: expire the event log ourselves.
        self.ttl_sweeper = TtlSweeper(self.ctx.clients.dynamodb, interval=self.ttl_sweep_seconds)
        self.ttl_sweeper.start()
        if aborted:
            from .persistence import resume_runs

            events = self.aws.events
            assert events is not None  # started with the account
            with iam.acting_as("StepFunction"):  # on AWS, a Step hands a run over to a new execution
                resume_runs(self.ctx, aborted, lambda detail: events.put(*_status_change(detail)))
        return self

    def stop(self) -> None:
        from stepgraph.engine.context import set_context

        if self.persistence is not None:  # first: what stopping ends is not saved (as a kill)
            self.persistence.detach()
        for poller in (self.poller, *self.pollers):
            poller.stop()
        self.ttl_sweeper.stop()
        for poller in (self.poller, *self.pollers):
            poller.join(timeout=5)
        self.aws.stop()
        set_context(None)


def api_function(template: Path = TEMPLATE) -> str:
    """The logical id of the function that serves the HTTP API: the one with a Function URL or an
    API Gateway event (template: ApiFunction)."""
    resources: dict[str, dict[str, Any]] = load_template(template)["Resources"]
    serving = [
        logical_id
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Serverless::Function"
        and (
            "FunctionUrlConfig" in (props := resource.get("Properties") or {})
            or any(e.get("Type") in ("Api", "HttpApi") for e in (props.get("Events") or {}).values())
        )
    ]
    if len(serving) != 1:
        raise RuntimeError(f"expected one function serving the API in {template}, found {serving}")
    return serving[0]


def api_app(ctx: Context) -> Any:
    """The API over `ctx`, its AWS calls made as the API function (`iam.ActingAs`)."""
    from stepgraph.api import create_app

    return iam.ActingAs(create_app(ctx), api_function())


def banner(runtime: LocalRuntime, host: str, port: int, *, reload: bool = False) -> str:
    """What `stepgraph dev` prints when it is ready: the graphs, the step mode, where the state
    lives, and the URLs (the Studio link as `langgraph dev` prints it)."""
    from .studio import studio_url

    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    mode = runtime.step_mode or runtime.ctx.settings.step_mode
    if runtime.persistence is None:
        data = "in memory only (--ephemeral): nothing is kept after the server stops"
    else:
        data = f"{runtime.persistence.data_dir} (kept across restarts; --ephemeral to keep nothing)"
    return "\n".join(
        [
            f"stepgraph: serving {', '.join(runtime.ctx.graphs.graph_ids())} from {runtime.config_path}",
            f"- step mode: {mode}" + ("; graphs reload when the project changes (--no-reload)" if reload else ""),
            f"- data: {data}",
            f"- API: {base}",
            f"- docs: {base}/docs",
            f"- Studio UI: {studio_url(host, port)}",
        ]
    )


def _status_change(detail: dict[str, Any]) -> tuple[str, str, dict[str, Any], list[str]]:
    return "aws.states", "Step Functions Execution Status Change", detail, [detail["executionArn"]]


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def queue_consumers(aws: LocalAWS) -> dict[str, str]:
    """Each queue a function's SQS event source reads (its URL): that function."""
    urls = {aws.resolve({"Fn::GetAtt": [logical_id, "Arn"]}): url for logical_id, url in aws.queue_urls.items()}
    consumers: dict[str, str] = {}
    resources: dict[str, dict[str, Any]] = aws.template["Resources"]
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == "SQS":
                consumers[urls[aws.resolve(event["Properties"]["Queue"])]] = logical_id
    return consumers


def _function_for_queue(aws: LocalAWS, queue_url: str) -> str:
    """The function whose SQS event source is this queue (the run queue's: DispatchFunction)."""
    function = queue_consumers(aws).get(queue_url)
    if function is None:
        raise RuntimeError(f"no function consumes {queue_url}")
    return function


def serve(
    config_path: Path,
    host: str,
    port: int,
    step_mode: str | None = None,
    *,
    reload: bool = False,
    open_browser: bool = False,
    data_dir: Path | None = None,
) -> None:
    """Start the local runtime and serve the API until interrupted (its state kept in `data_dir`);
    with `reload`, graph code is reloaded in-process when the project changes
    (`reload.GraphReloader`)."""
    import uvicorn

    from .reload import GraphReloader
    from .studio import dev_cors, open_when_serving, studio_url

    check_port(host, port)
    runtime = LocalRuntime(config_path=config_path, step_mode=step_mode, data_dir=data_dir).start()
    # Made before Studio's origin joins the CORS settings: it remembers the project's own.
    reloader = GraphReloader(runtime.ctx, config_path, api_function=api_function()) if reload else None
    try:
        runtime.ctx.graphs.cors = dev_cors(runtime.ctx.graphs.cors)  # Studio's origin, dev only
        app = api_app(runtime.ctx)
        if reloader is not None:
            reloader.start()
        if open_browser:
            open_when_serving(studio_url(host, port), host, port)
        if runtime.ctx.graphs.auth_ref is None and host not in _LOOPBACK:
            logger.warning("serving %s without authentication: add `auth` to langgraph.json to ask who calls", host)
        print(banner(runtime, host, port, reload=reloader is not None), flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if reloader is not None:
            reloader.stop()
        runtime.stop()
