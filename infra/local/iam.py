"""Who makes each AWS call of the local runtime, and what IAM would have to allow for it.

moto enforces no IAM. So, while recording, every call made through stepgraph's own clients is
attributed to the principal it is made for, as AWS would sign it with that principal's role:
the Lambda function whose handler runs (`emulator.lambda_hook`, the split worker), the API
function while it serves HTTP (`ActingAs`, an ASGI middleware the local runtime wraps the app
in) and the state machine whose Task runs (`emulator._stepfunctions`). Each call becomes one
or more `Call`s, (principal, IAM action, resource ARN), as IAM authorizes it: a DynamoDB
transaction is one action per item on that item's table, an S3 copy reads one object and
writes another, and so on (`iam_calls`). `stepgraph_local.iam_check` holds the record against
the policies of template.yaml.

Calls with no principal are the local runtime's own (provisioning, the SQS poller and the TTL
sweeper standing in for AWS services) or a test's: they are kept apart, by thread, so that a
call the attribution missed shows up. The user's own clients (no stepgraph app id) are never
recorded.

Recording is on in a process when `start_recording` was called, or when the
`STEPGRAPH_LOCAL_IAM_LOG` variable names a file (`record_from_env`): every process of a test
session (`stepgraph dev`, `stepgraph aws`, `stepgraph worker`) then appends each new call to
it, one JSON line, and a process that is killed loses nothing it recorded.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

from stepgraph.settings import APP_ID

__all__ = [
    "LOG_VARIABLE",
    "TOKEN_ACTIONS",
    "ActingAs",
    "Call",
    "Recorder",
    "acting_as",
    "iam_calls",
    "name_principal",
    "principal_for",
    "read_calls",
    "record_from_env",
    "recorder",
    "start_recording",
    "stop_recording",
]

LOG_VARIABLE = "STEPGRAPH_LOCAL_IAM_LOG"

logger = logging.getLogger("stepgraph_local.iam")

_principal: ContextVar[str | None] = ContextVar("stepgraph_local_principal", default=None)
_names: dict[str, str] = {}  # a physical name or ARN -> the logical id of its resource


class Call(NamedTuple):
    """One authorization AWS would make: `principal` (a logical id of template.yaml) doing
    `action` (`service:Action`) on `resource` (an ARN, or `*`)."""

    principal: str
    action: str
    resource: str


# ---------------------------------------------------------------- principals
def name_principal(physical: str, logical_id: str) -> None:
    """The local runtime names its functions and state machines after their logical ids unless
    the template names them: this keeps the way back (LocalAWS registers each)."""
    _names[physical] = logical_id


def principal_for(physical: str) -> str:
    """The logical id of the function or state machine named `physical` (itself if unknown)."""
    return _names.get(physical, physical)


@contextmanager
def acting_as(principal: str) -> Iterator[None]:
    """AWS calls made in this block (and in the threads and tasks it hands its context to) are
    `principal`'s."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ActingAs:
    """ASGI middleware: everything the app does for a request (and at start-up) is `principal`'s,
    as on AWS, where the API runs in its own function under that function's role. Starlette
    runs sync endpoints and iterators in worker threads with the request's context, so those
    calls are attributed too."""

    def __init__(self, app: Callable[[_Scope, _Receive, _Send], Awaitable[None]], principal: str) -> None:
        self.app, self.principal = app, principal

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        with acting_as(self.principal):
            await self.app(scope, receive, send)


# ---------------------------------------------------------------- boto3 calls -> IAM
def iam_calls(
    service: str, operation: str, params: dict[str, Any], *, region: str, account: str
) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs AWS authorizes for one API call. `service` is the
    IAM prefix (botocore's signing name: dynamodb, s3, sqs, states, lambda, scheduler,
    secretsmanager). An operation this does not know maps to `service:Operation` on `*`, which no
    policy naming its resources allows: a new kind of call fails the check until it is mapped here."""
    arn = f"arn:aws:{service}:{region}:{account}"
    if service == "dynamodb":
        return _dynamodb(operation, params, arn)
    if service == "s3":
        return _s3(operation, params)
    if service == "sqs":
        return _sqs(operation, params, region)
    if service == "states":
        return _states(operation, params)
    if service == "lambda":
        return _lambda(operation, params, arn)
    if service == "scheduler":
        return _scheduler(operation, params, arn)
    if service == "secretsmanager" and "SecretId" in params:
        # The secret's ARN, as stepgraph passes it (a template Ref); a bare name matches no policy.
        return [(f"secretsmanager:{operation}", str(params["SecretId"]))]
    return [(f"{service}:{operation}", "*")]


def _table(arn: str, name: str, index: str | None = None) -> str:
    if name.startswith("arn:"):  # DynamoDB accepts a table's ARN for its name
        return name + (f"/index/{index}" if index else "")
    return f"{arn}:table/{name}" + (f"/index/{index}" if index else "")


_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _dynamodb(operation: str, params: dict[str, Any], arn: str) -> list[tuple[str, str]]:
    # TransactWriteItems and TransactGetItems are not IAM actions: each item is authorized as
    # the single-item action on its own table.
    if operation == "TransactWriteItems":
        return [
            (f"dynamodb:{_TRANSACT_WRITE[kind]}", _table(arn, body["TableName"]))
            for item in params.get("TransactItems", [])
            for kind, body in item.items()
        ]
    if operation == "TransactGetItems":
        return [("dynamodb:GetItem", _table(arn, item["Get"]["TableName"])) for item in params.get("TransactItems", [])]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [(f"dynamodb:{operation}", _table(arn, name)) for name in params.get("RequestItems", {})]
    if "TableName" in params:
        return [(f"dynamodb:{operation}", _table(arn, params["TableName"], params.get("IndexName")))]
    return [(f"dynamodb:{operation}", "*")]  # ListTables and the like name no table


_S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "DeleteObjects": "DeleteObject",
}


def _s3(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    bucket = params.get("Bucket", "*")
    if operation == "DeleteObjects":  # authorized as DeleteObject on each key
        return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
    if operation == "CopyObject":  # reads the source, writes the target
        source = params["CopySource"]
        if isinstance(source, str):  # "bucket/key[?versionId=...]", maybe URL-encoded
            source_bucket, _, source_key = unquote(source.split("?", 1)[0]).lstrip("/").partition("/")
        else:
            source_bucket, source_key = source["Bucket"], source["Key"]
        return [
            ("s3:GetObject", f"arn:aws:s3:::{source_bucket}/{source_key}"),
            ("s3:PutObject", f"arn:aws:s3:::{bucket}/{params['Key']}"),
        ]
    action = "s3:" + _S3_ACTIONS.get(operation, operation)
    if "Key" in params:
        return [(action, f"arn:aws:s3:::{bucket}/{params['Key']}")]
    return [(action, f"arn:aws:s3:::{bucket}")]


_SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _sqs(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    action = "sqs:" + _SQS_ACTIONS.get(operation, operation)
    url = params.get("QueueUrl")
    if not url:
        return [(action, "*")]
    account, _, name = urlparse(url).path.strip("/").partition("/")  # /<account>/<queue name>
    return [(action, f"arn:aws:sqs:{region}:{account}:{name}")]


# The Service Authorization Reference gives these no resource type: only `*` can allow them.
TOKEN_ACTIONS = frozenset({"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"})


def _states(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    action = f"states:{operation}"
    if action in TOKEN_ACTIONS:
        return [(action, "*")]
    resource = params.get("executionArn") or params.get("stateMachineArn") or "*"
    return [(action, resource)]


def _lambda(operation: str, params: dict[str, Any], arn: str) -> list[tuple[str, str]]:
    action = "lambda:InvokeFunction" if operation in ("Invoke", "InvokeAsync") else f"lambda:{operation}"
    name = params.get("FunctionName")
    if not name:
        return [(action, "*")]
    return [(action, name if name.startswith("arn:") else f"{arn}:function:{name}")]


def _scheduler(operation: str, params: dict[str, Any], arn: str) -> list[tuple[str, str]]:
    """A schedule's calls name it in its group; creating or updating one passes its target's
    role to EventBridge Scheduler (iam:PassRole on that role)."""
    action = f"scheduler:{operation}"
    if "Name" not in params:
        return [(action, "*")]
    kind = "schedule-group" if "ScheduleGroup" in operation else "schedule"
    name = params["Name"] if kind == "schedule-group" else f"{params.get('GroupName') or 'default'}/{params['Name']}"
    pairs = [(action, f"{arn}:{kind}/{name}")]
    role = (params.get("Target") or {}).get("RoleArn")
    if role and operation in ("CreateSchedule", "UpdateSchedule"):
        pairs.append(("iam:PassRole", role))
    return pairs


# ---------------------------------------------------------------- recording
class Recorder:
    """The calls of this process: attributed ones (each new one also appended to `path`, when
    set), and the unattributed ones by thread name."""

    def __init__(self, path: str | Path | None, account: str) -> None:
        self.path = Path(path) if path else None
        self.account = account
        self.calls: set[Call] = set()
        self.unattributed: set[tuple[str, str]] = set()  # (thread name, action)
        self._lock = threading.Lock()

    def observe(self, service: str, operation: str, params: dict[str, Any], region: str) -> None:
        pairs = iam_calls(service, operation, params, region=region, account=self.account)
        principal = _principal.get()
        if principal is None:
            thread = threading.current_thread().name
            with self._lock:
                self.unattributed.update((thread, action) for action, _ in pairs)
            return
        new = [Call(principal, action, resource) for action, resource in pairs]
        with self._lock:
            new = [call for call in new if call not in self.calls]
            if not new:
                return
            self.calls.update(new)
            if self.path is not None:
                lines = "".join(json.dumps(call._asdict()) + "\n" for call in new)
                # One write of whole lines in append mode: processes sharing the file never interleave.
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(lines)


_recorder: Recorder | None = None
_registered: set[int] = set()


def recorder() -> Recorder | None:
    """This process's recorder, if recording."""
    return _recorder


def _observe(params: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
    rec = _recorder
    config = context.get("client_config")
    if rec is None or config is None:
        return
    if getattr(config, "user_agent_appid", None) != APP_ID:  # the user's client, not ours
        return
    rec.observe(model.service_model.signing_name, model.name, params, context.get("client_region") or "")


def _register_hook() -> None:
    """On the session stepgraph's clients come from (botocore copies a session's handlers into
    each client it creates: clients made before this are not recorded; the local runtime makes
    its clients after starting)."""
    import boto3
    from stepgraph.settings import own_session

    for session in (own_session(), boto3.DEFAULT_SESSION):
        if session is not None and id(session) not in _registered:
            session.events.register("before-parameter-build", _observe, unique_id="stepgraph-local-iam")
            _registered.add(id(session))


def start_recording(path: str | Path | None = None) -> Recorder:
    """Record this process's calls from now on (appending to `path`, when given). Idempotent for
    the same path."""
    global _recorder
    from moto.core import DEFAULT_ACCOUNT_ID  # the account the emulator answers for

    if _recorder is None or _recorder.path != (Path(path) if path else None):
        _recorder = Recorder(path, DEFAULT_ACCOUNT_ID)
    _register_hook()
    return _recorder


def stop_recording() -> None:
    global _recorder
    _recorder = None


def record_from_env() -> Recorder | None:
    """Start recording to the file `STEPGRAPH_LOCAL_IAM_LOG` names, if it names one."""
    path = os.environ.get(LOG_VARIABLE)
    return start_recording(path) if path else None


def read_calls(path: str | Path) -> set[Call]:
    """The calls every process appended to `path` (a line cut short by a killed process is skipped)."""
    calls: set[Call] = set()
    if not Path(path).exists():
        return calls
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            calls.add(Call(**json.loads(line)))
        except (ValueError, TypeError):
            logger.debug("skipped a partial line of %s (a process killed mid-write): %r", path, line)
    return calls
