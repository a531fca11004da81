"""The local runtime split in two processes, so the one running the Lambdas can die and come back.

`stepgraph aws` owns the state: a moto server provisioned from template.yaml, with Step
Functions executing the state machine. Its Lambda hook forwards each invocation over HTTP to
the worker, as the Lambda service hands an invocation to an execution environment.
`stepgraph worker` is that environment: it runs the handlers (and the SQS poller feeding
dispatch, and optionally the API) against the server's endpoint. Kill the worker and the
invocation it was running fails like a crashed Lambda ("Runtime.ExitError"), Step Functions
retries it, and the retry waits for a worker to come back, as a cold start would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .template import TEMPLATE

logger = logging.getLogger("stepgraph.local")

# How long a forwarded invocation waits for a worker to accept it (a worker restarting).
WORKER_WAIT_SECONDS = 60.0


class _FunctionError(Exception):
    """Raised by the forwarder so the Lambda hook reports the worker's error type unchanged."""


def _error(error_type: str, message: str) -> Exception:
    # The hook names the error after the exception's class (Step Functions matches on it).
    named: type[_FunctionError] = type(error_type, (_FunctionError,), {})
    return named(message)


class LambdaForwarder:
    """A handler for the Lambda hook that runs the invocation in the worker process."""

    def __init__(self, worker_url: str, function_name: str):
        self.url = f"{worker_url.rstrip('/')}/invoke/{function_name}"
        self.function_name = function_name

    def __call__(self, event: Any, context: Any) -> Any:
        body = json.dumps(
            {
                "event": event,
                "function_arn": context.invoked_function_arn,
                "memory_mb": context.memory_limit_in_mb,
                "remaining_ms": context.get_remaining_time_in_millis(),
            }
        ).encode()
        deadline = time.monotonic() + WORKER_WAIT_SECONDS
        while True:
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                # The function's Timeout, as Lambda enforces it. Lambda would also stop the
                # sandbox; here the late invocation runs on in the worker, a harsher test of
                # the fenced writes than the real service.
                with urllib.request.urlopen(
                    request, timeout=max(0.01, context.get_remaining_time_in_millis() / 1000)
                ) as resp:
                    reply = json.loads(resp.read())
                break
            except TimeoutError:
                raise self._timed_out(context) from None
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    raise self._timed_out(context) from None
                if isinstance(exc.reason, ConnectionRefusedError) and time.monotonic() < deadline:
                    time.sleep(0.05)  # no worker yet (restarting): the invocation waits for one
                    continue
                raise _error("Runtime.ExitError", f"worker unreachable or exited: {exc.reason}") from None
            except (ConnectionError, OSError) as exc:  # the worker died during the invocation
                raise _error("Runtime.ExitError", f"worker exited during the invocation: {exc!r}") from None
        if "errorType" in reply:
            raise _error(reply["errorType"], reply.get("errorMessage", ""))
        return reply["result"]

    @staticmethod
    def _timed_out(context: Any) -> Exception:
        return _error("Sandbox.Timedout", f"Task timed out after {context.timeout_seconds:.2f} seconds")


def serve_aws(
    *,
    port: int,
    worker_url: str,
    config_path: Path,
    env_file: Path,
    host: str = "127.0.0.1",
    step_mode: str | None = None,
) -> None:
    """Run the emulated AWS until SIGTERM/SIGINT; write the workers' environment to env_file."""
    from moto.server import ThreadedMotoServer

    from .aws import LocalAWS
    from .runtime import _function_for_queue, queue_consumers
    from .template import load_template

    os.environ["MOTO_PORT"] = str(port)  # Step Functions' tasks call this server back
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per AWS call
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{host}:{port}"
    functions = [
        name for name, r in load_template(TEMPLATE)["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    ]
    parameters = {"LangGraphConfig": str(Path(config_path).resolve())}
    if step_mode:
        parameters["StepMode"] = step_mode
    aws = LocalAWS(
        TEMPLATE,
        parameters=parameters,
        handlers={name: LambdaForwarder(worker_url, name) for name in functions},
        endpoint_url=endpoint,
    ).start()
    # STEPGRAPH_* only (endpoint, region, fake keys of stepgraph's own clients): the worker's
    # AWS_* variables stay the user's, for the graph nodes' own boto3 clients.
    env = {
        **aws.exported_environment,
        # What the worker runs: each function's code (CodeUri, Handler) and the queue consumer.
        "STEPGRAPH_LOCAL_FUNCTIONS": json.dumps(
            {
                name: [props.get("CodeUri", "."), props.get("Handler", "app.handler")]
                for name in functions
                for props in [aws.template["Resources"][name]["Properties"]]
            }
        ),
        "STEPGRAPH_LOCAL_QUEUE_CONSUMER": _function_for_queue(aws, aws.environment["STEPGRAPH_RUN_QUEUE_URL"]),
        "STEPGRAPH_LOCAL_QUEUE_CONSUMERS": json.dumps(queue_consumers(aws)),  # every queue: its function
    }
    tmp = env_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(env, indent=1))
    tmp.replace(env_file)  # readers never see half a file
    print(f"stepgraph aws: {endpoint}, Lambdas run by {worker_url}", flush=True)
    _wait_for_signal()
    aws.stop()
    server.stop()


def serve_worker(*, port: int, env_file: Path, host: str = "127.0.0.1", api_port: int | None = None) -> None:
    """Run the Lambda handlers for `stepgraph aws` until SIGTERM/SIGINT (or until killed)."""
    env = json.loads(Path(env_file).read_text())
    os.environ.update(env)

    from stepgraph.api.assistants import ensure_system_assistants
    from stepgraph.engine.context import Context, set_context
    from stepgraph.settings import Settings
    from stepgraph.storage.events import InProcessNotifier

    from . import iam
    from .emulator.lambda_hook import LambdaContext, _load_handler
    from .runtime import QueuePoller, api_app, api_function

    iam.record_from_env()
    # The API it may serve is `stepgraph dev`'s: open without an API key unless auth.py says otherwise.
    # Its webhooks may reach loopback and private addresses, as under `stepgraph dev` in one process.
    settings = dataclasses.replace(Settings.from_env(), require_api_key=False, webhook_local_network=True)
    ctx = Context(settings, notifier=InProcessNotifier())
    set_context(ctx)
    with iam.acting_as(api_function()):  # on AWS, the API's start-up does this
        ensure_system_assistants(ctx)
    handlers = {
        name: _load_handler((TEMPLATE.parent / code_uri).resolve(), spec)
        for name, (code_uri, spec) in json.loads(env["STEPGRAPH_LOCAL_FUNCTIONS"]).items()
        if (TEMPLATE.parent / code_uri / "app.py").is_file() and name != "ApiFunction"  # the API runs under uvicorn
    }

    class Invocations(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            return None

        def do_GET(self) -> None:
            self._reply(200, {"ok": True})

        def do_POST(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            handler = handlers.get(name)
            if handler is None:
                self._reply(200, {"errorType": "ResourceNotFoundException", "errorMessage": name})
                return
            context = LambdaContext(
                name,
                request.get("function_arn", name),
                request.get("memory_mb", 128),
                request.get("remaining_ms", 900_000) / 1000,
            )
            try:
                with iam.acting_as(name):  # the function's AWS calls (its name is its logical id)
                    reply = {"result": handler(request["event"], context)}
            except Exception as exc:  # as the Lambda runtime: any handler error is the reply, and logged
                logger.warning("%s: unhandled %s in handler", name, type(exc).__name__, exc_info=exc)
                reply = {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc),
                }
            self._reply(200, reply)

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    http = ThreadingHTTPServer((host, port), Invocations)
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, name="invocations", daemon=True).start()
    poller = QueuePoller(ctx.settings.run_queue_url, env["STEPGRAPH_LOCAL_QUEUE_CONSUMER"], ctx.clients.client)
    poller.start()
    others = [
        QueuePoller(url, function, ctx.clients.client)
        for url, function in json.loads(env.get("STEPGRAPH_LOCAL_QUEUE_CONSUMERS", "{}")).items()
        if url != ctx.settings.run_queue_url
    ]
    for other in others:
        other.start()
    print(f"stepgraph worker: http://{host}:{port}", flush=True)
    if api_port is not None:
        import uvicorn

        uvicorn.run(api_app(ctx), host=host, port=api_port, log_level="warning", access_log=False)
    else:
        _wait_for_signal()
    for each in (poller, *others):
        each.stop()
    http.shutdown()


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(3600):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


if __name__ == "__main__":  # pragma: no cover - use `stepgraph aws` / `stepgraph worker`
    sys.exit("run `stepgraph aws` or `stepgraph worker`")
