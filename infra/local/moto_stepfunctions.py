"""Two speed fixes to moto's Step Functions engine (written against moto 5.2.5).

moto parses the state machine's ASL with an ANTLR grammar for every execution (and at
StartExecution): about 20 ms of pure-Python parsing per run, more than the whole rest of a
short run. The parsed program is a tree of stateless evaluation components (execution state
lives in each execution's Environment), except for Map and Parallel states, which keep
per-execution workers: definitions without those are parsed once and shared.

It also parses every JSONPath (`$.step.status`, ...) anew each time a state reads one, about
0.25 ms each with jsonpath-ng; parsed paths are immutable, so they are cached too.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from moto.stepfunctions.parser.asl.parse import asl_parser
from moto.stepfunctions.parser.asl.utils import json_path

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


def install() -> None:
    """Idempotent."""
    if _original:
        return
    _original["parse"] = asl_parser.AmazonStateLanguageParser.parse
    _original["json_path_parse"] = json_path.parse
    asl_parser.AmazonStateLanguageParser.parse = staticmethod(_parse)  # type: ignore[method-assign]
    json_path.parse = functools.lru_cache(maxsize=1024)(json_path.parse)


def uninstall() -> None:
    if not _original:
        return
    asl_parser.AmazonStateLanguageParser.parse = staticmethod(_original.pop("parse"))  # type: ignore[method-assign]
    json_path.parse = _original.pop("json_path_parse")
    _parse_cached.cache_clear()
