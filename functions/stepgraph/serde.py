"""JSON for the wire and for stored documents: LangGraph/LangChain objects included; and the
serializer of checkpoints, which revives only the types it is allowed to."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import orjson
from langgraph.checkpoint.serde import _msgpack
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

logger = logging.getLogger(__name__)


def checkpoint_serde() -> JsonPlusSerializer:
    """LangGraph's serializer in strict msgpack mode: a stored value may revive LangGraph's safe
    types (datetimes, UUIDs, LangChain messages, Send, Command...) and the types the graph's
    state schema names (LangGraph adds those when it binds the saver to a compiled graph). Any
    other class or function named in a blob is never imported nor called: its arguments come back
    as plain data and LangGraph logs "Blocked deserialization". So whoever can write to the
    checkpoint table still cannot make a reader run code of their choosing."""
    if not _msgpack.STRICT_MSGPACK_ENABLED:
        # Someone imported LangGraph before stepgraph, or turned strict mode off: the saver stays
        # strict, but compiled graphs carry no allowlist, so state types of their own load as dicts.
        logger.warning(
            "LANGGRAPH_STRICT_MSGPACK is off: checkpoints still refuse unknown types, but graph "
            "state classes (dataclasses, pydantic models) will load as plain data"
        )
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return obj.model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, UUID):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    if hasattr(obj, "to_json") and callable(obj.to_json):
        return obj.to_json()
    # Send, Command and other plain objects: their public attributes.
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return repr(obj)


_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=_OPTS)


def dumps_str(obj: Any) -> str:
    return dumps(obj).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types only: what the client will see."""
    return orjson.loads(dumps(obj))
