"""Three speed fixes to moto's Step Functions engine (written against `MOTO_VERSION`).

moto parses the state machine's ASL with an ANTLR grammar for every execution (and at
StartExecution): about 20 ms of pure-Python parsing per run, more than the whole rest of a
short run. The parsed program is a tree of stateless evaluation components (execution state
lives in each execution's Environment), except for Map and Parallel states, which keep
per-execution workers: definitions without those are parsed once and shared.

It also parses every JSONPath (`$.step.status`, ...) anew each time a state reads one, about
0.25 ms each with jsonpath-ng; parsed paths are immutable, so they are cached too.

And it builds a new boto3 client for every Task it runs (each Lambda invocation, each SQS send):
10-15 ms of CPU each, several per run. boto3 clients are thread-safe: one per region, service
and endpoint is shared. They are built as stepgraph's own (`scope.client`), so the
in-process emulator answers them and the user's AWS_ENDPOINT_URL_* cannot redirect them.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Collection
from typing import Any

from botocore.config import Config
from moto.settings import moto_server_port
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: F401
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: F401
    state_task_service_sqs,
)
from moto.stepfunctions.parser.asl.parse import asl_parser
from moto.stepfunctions.parser.asl.utils import boto_client, json_path

from . import require_moto, scope
from ._patches import Patches

_STATEFUL_TYPES = {"Map", "Parallel"}
_original: dict[str, Any] = {}


def _has_stateful_states(definition: str) -> bool:
    try:
        states = json.loads(definition).get("States", {})
    except (ValueError, AttributeError):
        return True
    return any(isinstance(s, dict) and s.get("Type") in _STATEFUL_TYPES for s in states.values())


@functools.lru_cache(maxsize=64)
def _parse_cached(definition: str) -> Any:
    return _original["parse"](definition)


def _parse(definition: str) -> Any:
    if _has_stateful_states(definition):
        return _original["parse"](definition)
    return _parse_cached(definition)


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()
_reuse_clients = True


# moto's own boto_client_for settings: no retries (the state's Retry decides), no validation.
_TASK_CLIENT_CONFIG = Config(
    parameter_validation=False,
    retries={"max_attempts": 0, "total_max_attempts": 1},
    connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
    read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
)


def _boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    # moto's own version ignores state_credentials too (fixed test keys): the key leaves them out.
    # In-process the stubber answers; else, as moto does, the moto server on MOTO_PORT.
    endpoint_url = None if scope.active() else f"http://localhost:{moto_server_port()}"
    key = (region, service, endpoint_url)
    if not _reuse_clients:
        return scope.client(service, region=region, endpoint_url=endpoint_url, config=_TASK_CLIENT_CONFIG)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = scope.client(service, region=region, endpoint_url=endpoint_url, config=_TASK_CLIENT_CONFIG)
        return _clients[key]


def _modules_using(function: Any) -> list[Any]:
    """moto's modules import boto_client_for by name: each holds its own reference."""
    return [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser") and getattr(m, "boto_client_for", None) is function
    ]


SPEED_UPS = ("asl_parse", "json_path", "task_client_reuse")
_patches = Patches()


def install(without: Collection[str] = ()) -> None:
    """Idempotent. `without`: names of SPEED_UPS to leave out."""
    require_moto("stepfunctions")
    if _patches:
        return
    global _reuse_clients
    _reuse_clients = "task_client_reuse" not in without
    for module in _modules_using(boto_client.boto_client_for):
        _patches.replace(module, "boto_client_for", _boto_client_for)
    if "asl_parse" not in without:
        _original["parse"] = _patches.replace(asl_parser.AmazonStateLanguageParser, "parse", staticmethod(_parse))
    if "json_path" not in without:
        _patches.replace(json_path, "parse", functools.lru_cache(maxsize=1024)(json_path.parse))


def uninstall() -> None:
    _patches.revert()
    _original.clear()
    _clients.clear()
    _parse_cached.cache_clear()
