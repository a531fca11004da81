"""The hook into moto's Lambda: invoking a Lambda function runs our Python handler in-process.

moto (without Docker) cannot run Lambda code. `LambdaFunction.invoke` is the single point where
it would start a container, and every path goes through it: boto3 `Invoke`, Step Functions
tasks, SQS / DynamoDB-stream event-source mappings. Replacing that method, and nothing else,
runs the real handler for every path. Written against `MOTO_VERSION` exactly (see `install`).
"""

from __future__ import annotations

import base64
import email.message
import importlib.util
import json
import logging
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from werkzeug.datastructures import Headers

from .. import iam
from . import require_moto
from ._patches import Patches

__all__ = [
    "LambdaContext",
    "install",
    "installed",
    "register",
    "register_source",
    "uninstall",
    "unregister",
]

logger = logging.getLogger("stepgraph_local.lambda")

Handler = Callable[[Any, Any], Any]

_lock = threading.RLock()
_patches = Patches()
_originals: dict[str, Callable[..., Any]] = {}
# function name -> handler callable, or (code dir, "module.attr") still to be imported
_handlers: dict[str, Handler] = {}
_sources: dict[str, tuple[Path, str]] = {}
_modules: dict[Path, ModuleType] = {}  # handler file -> imported module (one import per file)


class LambdaContext:
    """Duck-typed Lambda context: what the Python runtime passes, enough for Powertools."""

    function_version = "$LATEST"
    identity = None
    client_context = None
    tenant_id = None

    def __init__(self, function_name: str, function_arn: str, memory_mb: int, timeout_s: int):
        self.function_name = function_name
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = int(memory_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.timeout_seconds = float(timeout_s)
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _HandlerLoadError(Exception):
    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def register(function_name: str, handler: Handler) -> None:
    """Run `handler(event, context)` when the moto function `function_name` is invoked."""
    with _lock:
        _sources.pop(function_name, None)
        _handlers[function_name] = handler


def register_source(function_name: str, code_dir: str | Path, handler: str) -> None:
    """Like the Lambda runtime: `handler` is `module.attr` inside `code_dir` (a SAM `CodeUri`
    plus `Handler`). The file is imported on the first invoke, under a module name unique to
    the file (`functions/step/app.py` -> `stepgraph_fn_step`), and cached."""
    with _lock:
        _handlers.pop(function_name, None)
        _sources[function_name] = (Path(code_dir).resolve(), handler)


def unregister(function_name: str) -> None:
    with _lock:
        _handlers.pop(function_name, None)
        _sources.pop(function_name, None)


def installed() -> bool:
    return bool(_patches)


def install() -> None:
    """Replace `moto.awslambda.models.LambdaFunction.invoke` (idempotent)."""
    require_moto("lambda_hook")
    from moto.awslambda.models import LambdaFunction  # here: the worker process imports this module, not moto

    with _lock:
        if not _patches:
            _originals["invoke"] = _patches.replace(LambdaFunction, "invoke", _invoke)


def uninstall() -> None:
    """Restore moto's own `LambdaFunction.invoke` (idempotent). Registrations are kept."""
    with _lock:
        _patches.revert()


def _resolve(function_name: str) -> Handler | None:
    with _lock:
        handler = _handlers.get(function_name)
        if handler is not None:
            return handler
        source = _sources.get(function_name)
        if source is None:
            return None
        code_dir, spec = source
        handler = _load_handler(code_dir, spec)
        _handlers[function_name] = handler  # cache; a later register_source replaces it
        return handler


def _load_handler(code_dir: Path, spec: str) -> Handler:
    module_path, _, attr = spec.rpartition(".")
    if not module_path or not attr:
        raise _HandlerLoadError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': expected module.function")
    file = code_dir.joinpath(*re.split(r"[./]", module_path)).with_suffix(".py")
    module = _modules.get(file)
    if module is None:
        if not file.is_file():
            raise _HandlerLoadError(
                "Runtime.ImportModuleError", f"Unable to import module '{module_path}': no file {file}"
            )
        name = "stepgraph_fn_" + re.sub(r"\W", "_", code_dir.name)
        if module_path != "app":
            name += "_" + re.sub(r"\W", "_", module_path)
        base, n = name, 1
        while name in sys.modules:  # another code dir with the same folder name
            name, n = f"{base}_{n}", n + 1
        spec_ = importlib.util.spec_from_file_location(name, file)
        assert spec_ is not None and spec_.loader is not None
        module = importlib.util.module_from_spec(spec_)
        sys.modules[name] = module
        try:
            spec_.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise _HandlerLoadError(
                "Runtime.ImportModuleError", f"Unable to import module '{module_path}': {exc!r}"
            ) from exc
        _modules[file] = module
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise _HandlerLoadError("Runtime.HandlerNotFound", f"Handler '{attr}' missing on module '{module_path}'")
    return handler


_CASE_INSENSITIVE_HEADERS = (Headers, email.message.Message)  # werkzeug's; botocore's HTTPHeaders


def _header(headers: Any, name: str, default: str) -> str:
    """Case-insensitive header lookup: moto passes botocore's HTTPHeaders, a werkzeug
    Headers (server mode) or a plain dict (event-source mappings)."""
    if not headers:
        return default
    value = headers.get(name)
    # Only a plain mapping needs the scan: the others' `get` already ignores case.
    if value is None and hasattr(headers, "items") and not isinstance(headers, _CASE_INSENSITIVE_HEADERS):
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return default if value is None else str(value)


def _error_envelope(error_type: str, message: str, tb: Any = None, request_id: str = "") -> bytes:
    body = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(tb)) if tb is not None else [],
    }
    return json.dumps(body).encode("utf-8")


def _invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> str | bytes:
    """Replacement for `LambdaFunction.invoke(self, body, request_headers, response_headers)`.

    Contract (moto `MOTO_VERSION`): return the response payload as bytes (None would make the API
    answer 404) and flag errors through `response_headers["x-amz-function-error"]`; the
    Step Functions engine turns that flag plus the payload's `errorType` into the state
    error, so `Retry`/`Catch` match the Python exception class name and `States.TaskFailed`.
    """
    handler = None
    try:
        handler = _resolve(self.function_name)
    except _HandlerLoadError as exc:
        response_headers["x-amz-function-error"] = "Unhandled"
        return _error_envelope(exc.error_type, str(exc))
    if handler is None:  # not one of ours: moto's own behaviour
        return _originals["invoke"](self, body, request_headers, response_headers)

    invocation_type = _header(request_headers, "x-amz-invocation-type", "RequestResponse")
    if invocation_type == "DryRun":
        return b""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    try:
        event = json.loads(body) if body else {}
    except ValueError as exc:
        response_headers["x-amz-function-error"] = "Unhandled"
        return _error_envelope("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}")

    context = LambdaContext(self.function_name, self.function_arn, self.memory_size, self.timeout)
    response_headers["x-amz-executed-version"] = "$LATEST"
    try:
        with iam.acting_as(iam.principal_for(self.function_name)):  # its AWS calls are the function's
            result = handler(event, context)
        try:
            payload = json.dumps(result).encode("utf-8")
        except (TypeError, ValueError) as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            message = f"Unable to marshal response: {exc}"
            payload = _error_envelope("Runtime.MarshalError", message, None, context.aws_request_id)
    except Exception as exc:  # the runtime reports any handler exception as Unhandled
        response_headers["x-amz-function-error"] = "Unhandled"
        # drop this frame: the runtime's stackTrace starts in the handler
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        logger.warning("%s: unhandled %s in handler", self.function_name, type(exc).__name__, exc_info=exc)
        payload = _error_envelope(type(exc).__name__, str(exc), tb, context.aws_request_id)

    if invocation_type == "Event":  # async invoke (run synchronously here): 202, empty body
        response_headers.pop("x-amz-function-error", None)
        return b""
    request_id = context.aws_request_id
    log = f"START RequestId: {request_id} Version: $LATEST\nEND RequestId: {request_id}\n"
    response_headers["x-amz-log-result"] = base64.b64encode(log.encode("utf-8")).decode("ascii")
    return payload
