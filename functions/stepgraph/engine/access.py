"""Who asked and what they may see, the Agent Server's way: the user a custom `auth.py`
authenticated, stored on each run so that every Step invocation hands it to the graph, and the
metadata filters its authorization handlers return (`$eq`, `$contains`).

The API decides who the user is and which filter applies; here is what the engine needs of
that: the user as the graph sees it, and whether a resource's metadata passes a filter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from stepgraph import serde

__all__ = [
    "RESERVED_CONFIGURABLE",
    "AuthUser",
    "auth_configurable",
    "matches_filter",
    "metadata_filter",
    "user_fields",
]

# Set by the server from the run's user, never taken from a client's or an assistant's config.
RESERVED_CONFIGURABLE = ("langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions")
_OPERATORS = ("$eq", "$contains")


class AuthUser(Mapping[str, Any]):
    """The authenticated user: `langgraph_sdk.auth.types.BaseUser` (`.identity`,
    `.permissions`, `.display_name`, `.is_authenticated`) with dict access to every field
    `authenticate` returned, also as attributes (`user["org"]`, `user.org`).

    What a graph finds in `config["configurable"]["langgraph_auth_user"]` and in
    `runtime.server_info.user`, rebuilt in each Step invocation from the fields the run stores.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = dict(fields)

    @property
    def identity(self) -> str:
        return str(self._fields["identity"])

    @property
    def display_name(self) -> str:
        return str(self._fields.get("display_name") or self.identity)

    @property
    def is_authenticated(self) -> bool:
        return bool(self._fields.get("is_authenticated", True))

    @property
    def permissions(self) -> list[str]:
        return list(self._fields.get("permissions") or [])

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy and pickle probe these before `_fields` exists
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"AuthUser({self._fields!r})"


def user_fields(user: Any) -> dict[str, Any]:
    """What `authenticate` returned (a user id, a dict with `identity`, or an object with an
    `identity` attribute) as the JSON fields a run stores: `identity`, `display_name` (the
    identity unless given), `is_authenticated` (true unless given), `permissions` (a list) and
    whatever else the user carries. Raises TypeError for anything without a string identity."""
    fields: dict[str, Any]
    if isinstance(user, str):
        fields = {"identity": user}
    elif isinstance(user, Mapping):
        fields = dict(user)
    elif hasattr(user, "identity"):
        dumped = user.model_dump() if callable(getattr(user, "model_dump", None)) else {}
        fields = dict(dumped) if isinstance(dumped, Mapping) else {}
        for name in ("identity", "display_name", "is_authenticated", "permissions"):
            if hasattr(user, name):
                fields[name] = getattr(user, name)
    else:
        raise TypeError(f"authenticate returned a {type(user).__name__}: it must return a user id, a dict or a user")
    identity = fields.get("identity")
    if not isinstance(identity, str) or not identity:
        raise TypeError(f"authenticate returned a user without a string identity: {identity!r}")
    fields.setdefault("display_name", identity)
    fields.setdefault("is_authenticated", True)
    fields["permissions"] = [str(p) for p in fields.get("permissions") or ()]
    jsonable: dict[str, Any] = serde.to_jsonable(fields)
    return jsonable


def auth_configurable(fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `configurable` keys the Agent Server sets for a run of an authenticated user."""
    if not fields:
        return {}
    user = AuthUser(fields)
    return {
        "langgraph_auth_user": user,
        "langgraph_auth_user_id": user.identity,
        "langgraph_auth_permissions": user.permissions,
        "user_id": user.identity,
    }


def metadata_filter(result: Mapping[str, Any]) -> dict[str, Any]:
    """An authorization handler's filter, checked: every key a metadata field, every condition
    a value (equality) or an object of `$eq` / `$contains`. Raises ValueError otherwise, so a
    mistyped operator fails loudly instead of matching nothing (or everything)."""
    for key, condition in result.items():
        if not isinstance(key, str):
            raise ValueError(f"filter keys are metadata fields, not {key!r}")
        if isinstance(condition, Mapping):
            unknown = [op for op in condition if op not in _OPERATORS]
            if unknown or not condition:
                raise ValueError(f"filter on {key!r}: operators are $eq and $contains, not {unknown or 'none'}")
    return dict(result)


def matches_filter(metadata: Mapping[str, Any] | None, filters: Mapping[str, Any] | None) -> bool:
    """Whether a resource whose metadata is `metadata` passes `filters` (all keys must hold):
    `{"k": v}` and `{"k": {"$eq": v}}` are equality; `{"k": {"$contains": v}}` holds when the
    metadata's list `k` has `v`, `{"k": {"$contains": [v, w]}}` when it has them all."""
    metadata = metadata or {}
    for key, condition in (filters or {}).items():
        conditions = condition.items() if isinstance(condition, Mapping) else [("$eq", condition)]
        for op, operand in conditions:
            if key not in metadata:
                return False
            held = metadata[key]
            if op == "$eq":
                if held != operand:
                    return False
            elif op == "$contains":
                wanted = operand if isinstance(operand, list) else [operand]
                if not isinstance(held, list) or any(w not in held for w in wanted):
                    return False
            else:
                raise ValueError(f"filter on {key!r}: unknown operator {op!r}")
    return True
