"""moto's Step Functions engine as the local runtime needs it: fixes (0, 0b, 1, 5) and speed-ups (2-4).

0. AWS publishes every execution's status change to EventBridge ("Step Functions Execution
   Status Change"); moto publishes nothing, so nothing would tell the reaper that an execution
   ended without its run's Finish. Every moto execution ends in one place, after its status is
   set: its worker's `terminated()`. Listeners (`on_execution_end`) get the event's `detail`
   there, on the execution's own thread.
0b. A StopExecution that lands as a Task state begins makes that state fail (moto pops the stack
   its stopped resource never pushed: `'dict' object has no attribute 'region'`), and the
   failure overwrote the stop: the execution ended FAILED (States.Runtime), not ABORTED as AWS
   ends every stopped execution. A stopped execution's environment now keeps its stop.

1. The engine's Tasks (each Lambda invocation, each SQS send) call AWS through boto3 clients it
   builds itself, which reach the in-process emulator only under moto's global `mock_aws`: the
   local runtime does not use it (`scope`). They are built as stepgraph's own (`scope.client`), so
   the emulator answers them and the user's AWS_ENDPOINT_URL_* cannot redirect them; on a moto
   server they go to it, on MOTO_PORT, as moto's own do.
2. And moto builds a new client for every Task: 10-15 ms of CPU each, several per run. boto3
   clients are thread-safe: one per region, service and endpoint is shared.
3. moto parses the state machine's ASL with an ANTLR grammar for every execution (and at
   StartExecution): about 20 ms of pure-Python parsing per run, more than the whole rest of a
   short run. The parsed program is a tree of stateless evaluation components (execution state
   lives in each execution's Environment), except for Map and Parallel states, which keep
   per-execution workers: definitions without those are parsed once and shared.
4. It also parses every JSONPath (`$.step.status`, ...) anew each time a state reads one, about
   0.25 ms each with jsonpath-ng; parsed paths are immutable, so they are cached too.
5. An execution runs in a thread of its own, and starts more (a Task under a timeout, a callback
   wait, Map and Parallel branches): its Tasks' calls (a Lambda invoke, an SQS send) are made as
   its state machine (`iam.acting_as`), whose role AWS would sign them with, so the threads the
   engine starts for an execution start in the context of the thread that starts them.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import json
import logging
import sys
import threading
import types
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from botocore.config import Config
from moto.settings import moto_server_port
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.asl.parse import asl_parser
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from .. import iam
from . import require_moto, scope
from ._patches import Patches

logger = logging.getLogger("stepgraph_local.stepfunctions")

SPEED_UPS = ("task_client_reuse", "asl_parse", "json_path")
# moto imports the Tasks' modules on first use, each with its own reference to boto_client_for:
# those of the Tasks the run state machine has are imported before it is replaced.
_TASK_MODULES = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
)
# The engine's modules that start threads within an execution (`import threading`, or `Thread`).
_THREADING_MODULES = (
    "moto.stepfunctions.parser.asl.component.program.program",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.inline_iteration_component",
    "moto.stepfunctions.parser.asl.component.state.exec.state_parallel.branch_worker",
)
_STATEFUL_TYPES = {"Map", "Parallel"}
_patches = Patches()
_originals: dict[str, Any] = {}


# ---------------------------------------------------------------- 0. execution status changes
ExecutionListener = Callable[[dict[str, Any]], None]
_listeners: list[ExecutionListener] = []


def on_execution_end(listener: ExecutionListener) -> None:
    """Call `listener(detail)` when an execution ends: the `detail` of the EventBridge event AWS
    sends then (executionArn, stateMachineArn, name, status, startDate, stopDate, input, output,
    error, cause; dates in epoch ms, input and output JSON strings)."""
    _listeners.append(listener)


def remove_listener(listener: ExecutionListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _terminated(self: BaseExecutionWorkerCommunication) -> None:
    _originals["terminated"](self)
    if not _listeners:
        return
    detail = status_change_detail(self.execution)
    for listener in list(_listeners):
        try:
            listener(detail)
        except Exception:  # the execution has ended either way; a listener's failure is its own
            logger.exception("execution-end listener %r failed for %s", listener, detail["executionArn"])


def status_change_detail(execution: Any) -> dict[str, Any]:
    """The EventBridge status-change `detail` of a parser backend's execution."""

    def ms(moment: datetime | None) -> int | None:
        return int(moment.timestamp() * 1000) if moment is not None else None

    def text(data: Any) -> str | None:
        return None if data is None else json.dumps(data, separators=(",", ":"))

    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": execution.status,
        "startDate": ms(execution.start_date),
        "stopDate": ms(execution.stop_date),
        "input": text(execution.input_data),
        "output": text(execution.output),
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if execution.output is not None else None,
        "error": execution.error,
        "cause": execution.cause,
    }


def _set_error(self: Environment, error: Any) -> None:
    with self._state_mutex:  # an RLock: the original takes it again
        if isinstance(self._program_state, ProgramStopped):
            return  # stopped first: the execution ends ABORTED, whatever its last state met
        _originals["set_error"](self, error)


# ---------------------------------------------------------------- 1-2. the Tasks' clients
# moto's own boto_client_for settings: no retries (the state's Retry decides), no validation.
_TASK_CLIENT_CONFIG = Config(
    parameter_validation=False,
    retries={"max_attempts": 0, "total_max_attempts": 1},
    connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
    read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
)
_clients: dict[tuple[str, str, str | None], Any] = {}
_clients_lock = threading.Lock()


def _endpoint_url() -> str | None:
    """In-process the stubber answers; else, as moto does, the moto server on MOTO_PORT."""
    return None if scope.active() else f"http://localhost:{moto_server_port()}"


def _task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    # moto's own version ignores state_credentials too (fixed test keys).
    return scope.client(service, region=region, endpoint_url=_endpoint_url(), config=_TASK_CLIENT_CONFIG)


def _shared_task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    key = (region, service, _endpoint_url())
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _task_client(region, service)
        return _clients[key]


def _modules_using(function: Any) -> list[Any]:
    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is function
    ]


# ---------------------------------------------------------------- 3. ASL parses
def _has_stateful_states(definition: str) -> bool:
    try:
        states = json.loads(definition).get("States", {})
    except (ValueError, AttributeError):
        return True
    return any(isinstance(s, dict) and s.get("Type") in _STATEFUL_TYPES for s in states.values())


@functools.lru_cache(maxsize=64)
def _parse_cached(definition: str) -> Any:
    return _originals["parse"](definition)


def _parse(definition: str) -> Any:
    if _has_stateful_states(definition):
        return _originals["parse"](definition)
    return _parse_cached(definition)


# ---------------------------------------------------------------- 5. the Tasks' principal
def _execution_logic(self: ExecutionWorker) -> None:
    state_machine = self._evaluation_details.state_machine_details
    with iam.acting_as(iam.principal_for(state_machine.arn)):
        _originals["execution_logic"](self)


class _ThreadInContext(threading.Thread):
    """A thread that runs in (a copy of) the context of the thread that created it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._creator_context = contextvars.copy_context()

    def run(self) -> None:
        self._creator_context.run(super().run)


class _ThreadingInContext(types.ModuleType):
    """`threading` as the engine's modules see it: the same, but for `Thread`."""

    Thread = _ThreadInContext

    def __getattr__(self, name: str) -> Any:
        return getattr(threading, name)


# ---------------------------------------------------------------- install
def install(without: Collection[str] = ()) -> None:
    """Idempotent. `without`: names of SPEED_UPS to leave out (the Tasks' clients are always ours)."""
    require_moto("stepfunctions")
    if _patches:
        return
    _originals["terminated"] = _patches.replace(BaseExecutionWorkerCommunication, "terminated", _terminated)
    _originals["set_error"] = _patches.replace(Environment, "set_error", _set_error)
    for name in _TASK_MODULES:
        importlib.import_module(name)
    _originals["execution_logic"] = _patches.replace(ExecutionWorker, "_execution_logic", _execution_logic)
    in_context = _ThreadingInContext("threading")
    for name in _THREADING_MODULES:
        module = importlib.import_module(name)
        for attribute, replacement in (("threading", in_context), ("Thread", _ThreadInContext)):
            if attribute in vars(module):
                _patches.replace(module, attribute, replacement)
    client_for = _task_client if "task_client_reuse" in without else _shared_task_client
    for module in _modules_using(boto_client.boto_client_for):
        _patches.replace(module, "boto_client_for", client_for)
    if "asl_parse" not in without:
        parser = asl_parser.AmazonStateLanguageParser
        _originals["parse"] = _patches.replace(parser, "parse", staticmethod(_parse))
    if "json_path" not in without:
        _patches.replace(json_path, "parse", functools.lru_cache(maxsize=1024)(json_path.parse))


def uninstall() -> None:
    """Give moto its code back (idempotent). Listeners stay registered until removed."""
    _patches.revert()
    _clients.clear()
    _parse_cached.cache_clear()
