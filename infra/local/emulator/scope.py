"""What the in-process emulator answers: stepgraph's own AWS calls, and nothing else.

`moto.mock_aws` is made for tests: it exports fake credentials into `os.environ` and switches on
a `before-send` handler that moto appends to botocore's `BUILTIN_HANDLERS` at import, so every
botocore client in the process talks to moto. Under `stepgraph dev` that would give a graph
node's own `boto3.client("bedrock-runtime")` (or its S3, or the user's own table) fake keys and
an emulated account. The local runtime therefore does not use mock_aws. It registers its own
`before-send` handler, with moto's own routing (`BotocoreStubber.process_request`), that answers
only the requests of clients stepgraph built: those carry its app id in their User-Agent
(`app/stepgraph`, from `stepgraph.settings.client_config`, which also makes them ignore
configured endpoint URLs) and their own fake credentials and region, from a session that
reads none of the user's AWS configuration (`own_session`). Any other request goes
where its client sends it, with the credentials, region and endpoints the process was started
with: nothing is written to `os.environ`, moto's global stubber stays off, and moto's patch of
the `requests` library is never started.

The rest of what mock_aws does is done here: moto's user config (Step Functions execution on)
and the reset of its backends. Written against `MOTO_VERSION` (`BotocoreStubber`, `BackendDict`,
`reset_model_data`, `default_user_config`); another version is refused, as by the Lambda hook.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any
from unittest import mock

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.handlers import BUILTIN_HANDLERS
from moto.core.base_backend import BackendDict
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse
from moto.core.config import default_user_config
from moto.core.model_instances import reset_model_data
from stepgraph.settings import APP_ID, client_config, own_session

from . import require_moto

__all__ = ["CREDENTIALS", "InProcess", "active", "client", "is_stepgraph_request"]

# What stepgraph's own clients sign with locally: never the user's keys, never os.environ.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_APP_TOKEN = re.compile(rf"(?:^| )app/{re.escape(APP_ID)}(?: |$)")
_lock = threading.Lock()


def is_stepgraph_request(request: AWSPreparedRequest) -> bool:
    """True for a request made by a client stepgraph built (its app id in the User-Agent)."""
    agent: str | bytes = request.headers.get("User-Agent") or ""  # botocore may hold it as bytes
    if isinstance(agent, bytes):
        agent = agent.decode("latin-1")
    return _APP_TOKEN.search(agent) is not None


class _Stubber(BotocoreStubber):
    """moto's `before-send` stubber, answering stepgraph's requests only."""

    # Set: every request answered goes through `around(request, answer)` (the data folder's
    # snapshots, `stepgraph_local.persistence`).
    around: Callable[[AWSPreparedRequest, Callable[[], Any]], Any] | None = None

    def __call__(self, event_name: str, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
        if not self.enabled or not is_stepgraph_request(request):
            return None
        around = self.around
        if around is None:
            response = self.process_request(request)
        else:
            response = around(request, lambda: self.process_request(request))
        if response is None:  # not an AWS URL moto knows: never let our call leave the process
            raise RuntimeError(f"stepgraph's own client called {request.url}, which the local emulator does not serve")
        status, headers, body = response
        return AWSResponse(request.url, status, headers, MockRawResponse(body))  # type: ignore[arg-type]  # a dict, as moto passes


_stubber = _Stubber()
_before_send: Callable[..., Any] = _stubber  # botocore's stubs type handlers as returning None; this returns a response
# Like moto's own: every botocore session created from now on carries it (inert while disabled).
BUILTIN_HANDLERS.append(("before-send", _stubber))


def set_around(around: Callable[[AWSPreparedRequest, Callable[[], Any]], Any] | None) -> None:
    """Wrap every request the emulator answers in `around(request, answer)` (None: unwrap)."""
    _stubber.around = around


def answer(request: AWSPreparedRequest) -> tuple[int, Any, Any]:
    """moto's answer to a request, outside any client (the data folder's journal replay)."""
    response = _stubber.process_request(request)
    if response is None:
        raise RuntimeError(f"the local emulator does not serve {request.url}")
    status, headers, body = response
    return int(status), headers, body


def active() -> bool:
    """True while the in-process emulator answers stepgraph's requests."""
    return _stubber.enabled


def client(service: str, *, region: str, endpoint_url: str | None = None, config: Any = None) -> Any:
    """A client of stepgraph's for the emulated account: fake credentials, explicit region,
    stepgraph's Config (app id; configured endpoint URLs ignored), from a session that reads
    none of the user's AWS configuration. `endpoint_url` None: the in-process emulator (AWS's
    endpoint URLs, answered by the stubber); else a moto server."""
    return own_session().client(
        service, region_name=region, endpoint_url=endpoint_url, config=client_config(config), **CREDENTIALS
    )


class InProcess:
    """In place of `mock_aws(config)`: moto answers stepgraph's clients, in this process."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        require_moto("scope")
        self._config = mock.patch.dict(default_user_config, config or {})

    def start(self) -> None:
        with _lock:
            if _stubber.enabled:
                raise RuntimeError("emulator.scope.InProcess is already started in this process")
            self._config.start()
            BackendDict.reset()
            # Sessions created before this module was imported: give them the handler too.
            for session in {id(s): s for s in (own_session(), boto3.DEFAULT_SESSION) if s is not None}.values():
                session.events.unregister("before-send", _before_send)
                session.events.register("before-send", _before_send)
            _stubber.enabled = True

    def stop(self) -> None:
        with _lock:
            if not _stubber.enabled:
                return
            _stubber.enabled = False
            BackendDict.reset()
            reset_model_data()
            self._config.stop()
