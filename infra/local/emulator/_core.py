"""Two speed-ups to the request path every emulated call takes through moto (`moto.core`).

1. moto's response serializer finds each output member in the result by trying aliases in turn
   (`XFormedAttributePicker`: six alias providers, each a new object, plus `xform_name` of each
   alias): per member of every structure, on every response. A DynamoDB Query of 20 items made
   ~800 such lookups, half its cost. The candidate keys depend only on the member's shape, its
   parent structure, the member name and the result object's class name (`ExplicitAlias`, the
   only provider reading the object itself, is skipped: objects with a `Meta` go moto's way), so
   moto's own providers compute them once and they are cached. The lookups that follow are
   moto's `get_value` (first hit wins; on a plain dict, the `dict.get` it amounts to), and
   response transformers still run, on the same key path.
2. moto looks up whether the action is a method of the response class with
   `inspect.getmembers(cls)` (every attribute of the class hierarchy, ~25 us) on every request,
   to test one name: the membership test is answered for that name alone, by the same rule
   (found in the class hierarchy, and `inspect.isfunction` of `getattr(cls, name)`), so a
   method patched or added later is seen exactly as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Any

from moto.core import responses, serialize

from . import require_moto
from ._patches import Patches

SPEED_UPS = ("serializer", "action_lookup")
_CACHE_LIMIT = 50_000  # entries; cleared when full (error shapes are built per error)
_patches = Patches()
_originals: dict[str, Any] = {}


# ---------------------------------------------------------------- 1. serializer member lookups
# (shape, member name, parent shape, class name) -> (candidate keys, any of them dotted)
_possible_keys: dict[tuple[Any, ...], tuple[tuple[str, ...], bool]] = {}
_MISSING = serialize.MISSING  # what moto's picker passes as the default
_NO_PARENT = object()
_DEFAULT_PROVIDERS = list(serialize.DEFAULT_ALIAS_PROVIDERS)


def _keys_for(picker: Any, value: Any, key: str, shape: Any) -> tuple[tuple[str, ...], bool]:
    cache_key = (shape, key, getattr(shape, "parent", _NO_PARENT), value.__class__.__name__)
    entry = _possible_keys.get(cache_key)
    if entry is None:
        # The default providers read nothing else of the context: whatever they raise, moto would.
        context = serialize.AttributePickerContext(obj=value, key=key, shape=shape)
        keys = tuple(picker.get_possible_keys(context))
        entry = keys, any("." in k for k in keys)  # dotted: a path, for moto's get_value
        if len(_possible_keys) >= _CACHE_LIMIT:
            _possible_keys.clear()
        _possible_keys[cache_key] = entry
    return entry


def _get_value(self: serialize.ResponseSerializer, value: Any, key: str, shape: Any) -> Any:
    picker = self._value_picker
    plain = type(value) is dict  # no Meta, and `value[k]` is `dict.get`: moto's get_value inlined
    if (
        type(picker) is not serialize.XFormedAttributePicker
        or picker.alias_providers != _DEFAULT_PROVIDERS
        or (not plain and hasattr(value, "Meta"))
    ):
        return _originals["get_value"](self, value, key, shape)
    keys, dotted = _keys_for(picker, value, key, shape)
    found: Any = _MISSING
    get = value.get if plain and not dotted else lambda k, default: serialize.get_value(value, k, default)
    for possible_key in keys:
        found = get(possible_key, _MISSING)
        if found is not _MISSING:
            break
    if found is _MISSING:
        found = None
    if picker.response_transformers:
        key_path = f"{'.'.join(self.path)}.{key}"
        for transform_path, transform in picker.response_transformers.items():
            if key_path.endswith(transform_path):
                return transform(found)
    return found


# ---------------------------------------------------------------- 2. action lookup
class _MethodNames:
    """`name in method_names_from_class(cls)`, answered for the one name asked."""

    __slots__ = ("_cls",)

    def __init__(self, cls: type) -> None:
        self._cls = cls

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return name in _originals["method_names_from_class"](self._cls)
        for base in self._cls.__mro__:  # dir(cls): every name of the class hierarchy
            if name in base.__dict__:
                break
        else:
            return False
        try:
            member = getattr(self._cls, name)
        except AttributeError:  # as inspect.getmembers: fall back to the raw class attribute
            member = base.__dict__[name]
        return inspect.isfunction(member)


# ---------------------------------------------------------------- install
def install(without: Collection[str] = ()) -> None:
    """Idempotent. `without`: names of SPEED_UPS to leave out."""
    require_moto("core")
    if _patches:
        return
    if "serializer" not in without:
        _originals["get_value"] = _patches.replace(serialize.ResponseSerializer, "get_value", _get_value)
    if "action_lookup" not in without:
        _originals["method_names_from_class"] = _patches.replace(responses, "method_names_from_class", _MethodNames)


def uninstall() -> None:
    _patches.revert()
    _possible_keys.clear()
