"""Cheaper emulated AWS calls: work moto, botocore and werkzeug redo on every request, done once.

Every AWS call of the local runtime (boto3 -> botocore -> moto -> back) runs in-process; about
25 of them per run. Written against moto `MOTO_VERSION` (any other is refused), botocore
1.43.127 and werkzeug 3.1.9: on any other version of those two the patches for that library are
left out (calls stay correct, only slower), with one warning. Each patch keeps the library's own
code for the result and only skips recomputing what cannot have changed.

1. moto's response serializer finds each output member in the result by trying aliases in turn
   (`XFormedAttributePicker`: six alias providers, each a new object, plus `xform_name` of each
   alias): per member of every structure, on every response. A DynamoDB Query of 20 items made
   ~800 such lookups, half its cost. The candidate keys depend only on the member's shape, its
   parent structure, the member name and the result object's class name (`ExplicitAlias`, the
   only provider reading the object itself, is skipped: objects with a `Meta` go the original
   way), so moto's own providers compute them once and they are cached. The lookups that follow
   are moto's `get_value` (first hit wins; on a plain dict, the `dict.get` it amounts to), and
   response transformers still run, on the same key path.
2. moto looks up whether the action is a method of the response class with
   `inspect.getmembers(cls)` (every attribute of the class hierarchy, ~25 us) on every request,
   to test one name: the membership test is answered for that name alone, by the same rule
   (found in the class hierarchy, and `inspect.isfunction` of `getattr(cls, name)`), so a
   method patched or added later is seen exactly as before.
3. botocore rebuilds the User-Agent string twice per request (~25 us each: it sanitises every
   character of every component). It is a pure function of the client's settings, the platform
   strings and the request's feature ids: cached on exactly those inputs (the features in the
   order botocore joins them).
4. moto rebuilds each backend's URL table (`BaseBackend.urls`: every path pattern formatted per
   URL base, plus a regex substitution for the China domain) to route every request: ~35 us for
   Lambda's patterns. The table is a function of the URL bases, the path patterns and their
   handlers, and the ISO-regions setting, all read anew on every request to key the cache; each
   caller gets its own copy of the dict.
5. werkzeug (which moto builds a request object with, werkzeug 3.1.9) converts the same base URL
   and path between IRI and URI forms on every request: `iri_to_uri` and `get_current_url` are
   pure functions of their string arguments, so their results are kept (least recently used,
   bounded).
6. moto parses a DynamoDB update expression twice per UpdateItem (and per Update of a
   transaction): ~110 us each for `SET a = :a, #s = :s REMOVE b`, and the runtime only ever sends
   a handful of distinct expressions. The parse depends on the string alone; its tree is later
   mutated (placeholders are replaced by values), so each caller gets a new tree: the first parse
   is kept pickled and unpickled per call (~15 us; plain objects, parent links included). Invalid
   expressions raise as before (never cached); with moto's parser logging at DEBUG the cache is
   bypassed, so the log is unchanged too.
7. Likewise moto lexes each DynamoDB condition expression twice per conditional write (~55 us
   for `attribute_not_exists(a) AND contains(p, :e) AND b = :b`), from the string alone. The
   tokens are kept; each caller gets new nodes, equal to the lexer's own (an empty `children`
   list each, as the lexer makes them). Values and names are substituted afterwards, by moto.
8. moto converts names from CamelCase to snake_case character by character (~5 us each): the
   action of every request, and each of SQS's ~15 queue attributes whenever a queue's attributes
   are read (every SendMessage and ReceiveMessage). A pure function of its string: memoised
   (bounded) in every moto module loaded that imported it.
9. moto validates a DynamoDB update expression by walking its tree ten times (one processor per
   check: placeholders, paths, functions, types...). On every node of every walk the walker
   rebuilds the processor's class-to-handler map twice (`nodes_to_be_processed` and `process`)
   and calls a no-op hook per child: 10% of a run's CPU. The map is the processor's own, fixed
   per instance, so each walk builds it once; the nodes, their order, the handlers called and the
   hooks that do something are moto's, unchanged. A processor overriding the walk is left alone.
10. moto's validator deep-copies the update expression's tree before those walks (~70 us):
    a pickle round trip makes the same independent tree (parent links included) in a fraction of
    the time; anything not a tree, or a tree pickle cannot copy, is deep-copied as before.
11. A projected read (`ProjectionExpression`, as GetItem of a thread's queue fields does) turns
    the whole item into plain Python values and back to pick a few attributes: 3 ms for a thread
    that holds its state. When every projected path is a top-level attribute, those attributes
    are copied as they are stored, as an unprojected read returns them; nested paths go moto's way.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import inspect
import logging
import pickle
import sys
from collections import deque
from collections.abc import Collection
from typing import Any

import botocore
import werkzeug.sansio.request
import werkzeug.test
from botocore import useragent
from botocore.context import get_context
from moto.core import base_backend, serialize
from moto.core import responses as moto_responses
from moto.core import utils as moto_utils
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.parsing import ast_nodes
from moto.dynamodb.parsing import expressions as update_expressions
from moto.dynamodb.parsing import validators as update_validators

from . import require_moto
from ._patches import Patches

__all__ = ["BOTOCORE_VERSION", "SPEED_UPS", "WERKZEUG_VERSION", "install", "uninstall"]

BOTOCORE_VERSION = "1.43.127"
WERKZEUG_VERSION = "3.1.9"
_CACHE_LIMIT = 50_000  # entries per cache; cleared when full (error shapes are built per error)

_log = logging.getLogger("stepgraph_local")
_originals: dict[str, Any] = {}
_warned: set[str] = set()


# ---------------------------------------------------------------- 1. serializer member lookups
# (shape, member name, parent shape, class name) -> (candidate keys, any of them dotted), or None
_possible_keys: dict[tuple[Any, ...], tuple[tuple[str, ...], bool] | None] = {}
_MISSING = serialize.MISSING  # what moto's picker passes as the default
_NO_PARENT = object()
_DEFAULT_PROVIDERS = list(serialize.DEFAULT_ALIAS_PROVIDERS)


def _keys_for(picker: Any, value: Any, key: str, shape: Any) -> tuple[tuple[str, ...], bool] | None:
    cache_key = (shape, key, getattr(shape, "parent", _NO_PARENT), value.__class__.__name__)
    try:
        return _possible_keys[cache_key]
    except KeyError:
        pass
    context = serialize.AttributePickerContext(obj=value, key=key, shape=shape)
    entry: tuple[tuple[str, ...], bool] | None
    try:
        keys = tuple(picker.get_possible_keys(context))
        entry = keys, any("." in k for k in keys)  # dotted: a path, for moto's get_value
    except Exception:  # noqa: BLE001 - whatever moto would raise, let moto raise it
        entry = None
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
    entry = _keys_for(picker, value, key, shape)
    if entry is None:
        return _originals["get_value"](self, value, key, shape)
    keys, dotted = entry
    found = _MISSING
    if plain and not dotted:
        for possible_key in keys:
            found = value.get(possible_key, _MISSING)
            if found is not _MISSING:
                break
    else:
        get_value = serialize.get_value
        for possible_key in keys:
            found = get_value(value, possible_key, _MISSING)
            if found is not _MISSING:
                break
    if found is _MISSING:
        found = None
    transformers = picker.response_transformers
    if transformers:
        key_path = f"{'.'.join(self.path)}.{key}"
        for transform_path, transform in transformers.items():
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


def _method_names_from_class(cls: type) -> _MethodNames:
    return _MethodNames(cls)


# ---------------------------------------------------------------- 3. User-Agent string
_user_agents: dict[tuple[Any, ...], str] = {}


def _user_agent_key(ua: useragent.UserAgentString) -> tuple[Any, ...] | None:
    config = ua._client_config
    if config:
        if hasattr(config, "_supplied_user_agent"):
            override = config._supplied_user_agent
        else:
            override = config.user_agent
        retries = config.retries
        config_key: tuple[Any, ...] | None = (
            override,
            None if not retries else (retries.get("mode"),),
            bool(config.endpoint_discovery_enabled),
            config.user_agent_appid,
            config.user_agent_extra,
        )
    else:
        config_key = None
    context = get_context()
    features = (ua._client_features or set()).union(set() if context is None else context.features)
    if sum(len(f) + 1 for f in features) > 1000:  # near its 1024-byte cap botocore truncates (and logs)
        return None
    return (
        ua._platform_name,
        ua._platform_version,
        ua._platform_machine,
        ua._python_version,
        ua._python_implementation,
        ua._execution_env,
        ua._crt_version,
        ua._session_user_agent_name,
        ua._session_user_agent_version,
        ua._session_user_agent_extra,
        config_key,
        tuple(features),
        useragent.modify_components,
        useragent.botocore_version,
    )


def _user_agent_to_string(self: useragent.UserAgentString) -> str:
    try:
        key = _user_agent_key(self)
        hash(key)
    except Exception:  # noqa: BLE001 - an unhashable setting: build it botocore's way
        key = None
    if key is None:
        return _originals["to_string"](self)
    try:
        return _user_agents[key]
    except KeyError:
        pass
    value = _originals["to_string"](self)
    if len(_user_agents) >= _CACHE_LIMIT:
        _user_agents.clear()
    _user_agents[key] = value
    return value


# ---------------------------------------------------------------- 4. backend URL tables
_url_tables: dict[tuple[Any, ...], dict[str, Any]] = {}


def _backend_urls(self: base_backend.BaseBackend) -> dict[str, Any]:
    iso = base_backend.enable_iso_regions()
    try:
        key = (
            tuple(self.url_bases),
            tuple(self._url_module.url_paths.items()),
            tuple(base_backend.ISO_REGION_DOMAINS.items()) if iso else None,
        )
        table = _url_tables.get(key)
    except TypeError:  # an unhashable handler: build it moto's way
        return _originals["urls"].fget(self)
    if table is None:
        table = _originals["urls"].fget(self)
        if len(_url_tables) >= _CACHE_LIMIT:
            _url_tables.clear()
        _url_tables[key] = table
    return dict(table)


# ---------------------------------------------------------------- 5. werkzeug URL forms
_URL_CACHE_SIZE = 1024


# ---------------------------------------------------------------- 6. update expression trees
_UNPICKLABLE = b""
_update_trees: dict[str, bytes] = {}


def _make_update_expression(cls: type, expression_str: Any) -> Any:
    make = _originals["make_update_expression"].__func__
    if (
        cls is not update_expressions.UpdateExpressionParser
        or type(expression_str) is not str
        or update_expressions.logger.isEnabledFor(logging.DEBUG)
    ):
        return make(cls, expression_str)
    pickled = _update_trees.get(expression_str)
    if pickled:
        return pickle.loads(pickled)
    tree = make(cls, expression_str)  # raises for an invalid expression: nothing cached
    if pickled is None:
        try:
            pickled = pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - a tree pickle cannot copy: parse it every time
            pickled = _UNPICKLABLE
        if len(_update_trees) >= _CACHE_LIMIT:
            _update_trees.clear()
        _update_trees[expression_str] = pickled
    return tree


# ---------------------------------------------------------------- 7. condition expression tokens
_condition_tokens: dict[str, tuple[tuple[str, str, str, str], ...] | None] = {}


def _lex_condition_expression(self: ConditionExpressionParser) -> Any:
    lex = _originals["lex_condition_expression"]
    expression = self.condition_expression
    if type(self) is not ConditionExpressionParser or type(expression) is not str:
        return lex(self)
    tokens = _condition_tokens.get(expression)
    if tokens is not None:
        node = ConditionExpressionParser.Node
        return deque([node(nonterminal, kind, text, value, []) for nonterminal, kind, text, value in tokens])
    nodes = lex(self)  # raises for an invalid expression: nothing cached
    if expression not in _condition_tokens:
        cacheable = all(type(n) is ConditionExpressionParser.Node and n.children == [] for n in nodes)
        if len(_condition_tokens) >= _CACHE_LIMIT:
            _condition_tokens.clear()
        _condition_tokens[expression] = tuple(tuple(n)[:4] for n in nodes) if cacheable else None
    return nodes


# ---------------------------------------------------------------- 8. CamelCase to snake_case
_CAMEL_CACHE_SIZE = 4096


@functools.lru_cache(_CAMEL_CACHE_SIZE)
def _camel_to_snake_cached(argument: str) -> str:
    return _originals["camelcase_to_underscores"](argument)


def _camelcase_to_underscores(argument: Any) -> Any:
    if type(argument) is str:
        return _camel_to_snake_cached(argument)
    return _originals["camelcase_to_underscores"](argument)


def _moto_modules_using(function: Any) -> list[Any]:
    """moto's modules import camelcase_to_underscores by name: each holds its own reference."""
    return [
        module
        for name, module in list(sys.modules.items())
        if (name == "moto" or name.startswith("moto."))
        and getattr(module, "camelcase_to_underscores", None) is function
    ]


# ---------------------------------------------------------------- 9. update expression walks
_Walker = ast_nodes.DepthFirstTraverser


def _traverse(self: Any, node: Any) -> Any:
    cls = type(self)
    if (
        cls.process is not _Walker.process
        or cls.nodes_to_be_processed is not _Walker.nodes_to_be_processed
        or cls.traverse_node_recursively is not _Walker.traverse_node_recursively
    ):
        return _originals["traverse"](self, node)
    handlers = self._processing_map()
    kinds = tuple(handlers)
    pre = None if cls.pre_processing_of_child is _Walker.pre_processing_of_child else self.pre_processing_of_child
    tree_node = ast_nodes.Node

    def walk(node: Any, child_id: int) -> Any:  # moto's traverse_node_recursively, map built once
        if isinstance(node, tree_node):
            parent = node.parent
            if node.children is not None:
                for i, child in enumerate(node.children):
                    if pre is not None:
                        pre(node, i)
                    walk(child, i)
            if isinstance(node, kinds):
                for kind, handler in handlers.items():  # moto's `process`: the first kind that matches
                    if isinstance(node, kind):
                        node = handler(node)
                        break
                node.parent = parent
                if parent:
                    parent.children[child_id] = node
        return node

    return walk(node, -1)


# ---------------------------------------------------------------- 10. update expression tree copies
def _copy_tree(value: Any, memo: Any = None) -> Any:
    if memo is None and isinstance(value, ast_nodes.Node):
        try:
            return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:  # noqa: BLE001 - not picklable: copy it moto's way
            pass
    return _originals["deepcopy"](value, memo)


# ---------------------------------------------------------------- 11. top-level projections
def _project(self: Item, projection_expressions: Any) -> Item:
    try:
        names = [path[0] for path in projection_expressions if len(path) == 1 and "[" not in path[0]]
    except TypeError:
        names = []
    if not names or len(names) != len(projection_expressions):
        return _originals["project"](self, projection_expressions)
    attrs = self.attrs
    picked = {name: copy.deepcopy(attrs[name]) for name in names if name in attrs}
    return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=picked)


# ---------------------------------------------------------------- install
def _supported(library: str, found: str, expected: str) -> bool:
    if found == expected:
        return True
    if library not in _warned:
        _warned.add(library)
        _log.warning(
            "stepgraph's %s speed-ups were written against %s %s, found %s: left out (calls are slower)",
            library,
            library,
            expected,
            found,
        )
    return False


SPEED_UPS = (
    "serializer",
    "action_lookup",
    "user_agent",
    "url_tables",
    "werkzeug_urls",
    "update_parse",
    "condition_lex",
    "camel_case",
    "update_walk",
    "tree_copy",
    "projection",
)
_patches = Patches()


def install(without: Collection[str] = ()) -> None:
    """Idempotent. `without`: names of SPEED_UPS to leave out."""
    require_moto("speed")
    if _patches:
        return
    replace = _patches.replace
    if "serializer" not in without:
        _originals["get_value"] = replace(serialize.ResponseSerializer, "get_value", _get_value)
    if "action_lookup" not in without:
        _originals["method_names_from_class"] = replace(
            moto_responses, "method_names_from_class", _method_names_from_class
        )
    if "url_tables" not in without:
        _originals["urls"] = replace(base_backend.BaseBackend, "urls", property(_backend_urls))
    if "update_parse" not in without:
        _originals["make_update_expression"] = replace(
            update_expressions.UpdateExpressionParser, "make", classmethod(_make_update_expression)
        )
    if "condition_lex" not in without:
        _originals["lex_condition_expression"] = replace(
            ConditionExpressionParser, "_lex_condition_expression", _lex_condition_expression
        )
    if "camel_case" not in without:
        _originals["camelcase_to_underscores"] = moto_utils.camelcase_to_underscores
        for module in _moto_modules_using(moto_utils.camelcase_to_underscores):
            replace(module, "camelcase_to_underscores", _camelcase_to_underscores)
    if "update_walk" not in without:
        _originals["traverse"] = replace(_Walker, "traverse", _traverse)
    if "tree_copy" not in without:
        _originals["deepcopy"] = replace(update_validators, "deepcopy", _copy_tree)
    if "projection" not in without:
        _originals["project"] = replace(Item, "project", _project)
    if "user_agent" not in without and _supported("botocore", botocore.__version__, BOTOCORE_VERSION):
        _originals["to_string"] = replace(useragent.UserAgentString, "to_string", _user_agent_to_string)
    if "werkzeug_urls" not in without and _supported(
        "werkzeug", importlib.metadata.version("werkzeug"), WERKZEUG_VERSION
    ):
        replace(werkzeug.test, "iri_to_uri", functools.lru_cache(_URL_CACHE_SIZE)(werkzeug.test.iri_to_uri))
        replace(
            werkzeug.sansio.request,
            "get_current_url",
            functools.lru_cache(_URL_CACHE_SIZE)(werkzeug.sansio.request.get_current_url),
        )


def uninstall() -> None:
    _patches.revert()
    _originals.clear()
    _possible_keys.clear()
    _url_tables.clear()
    _user_agents.clear()
    _update_trees.clear()
    _condition_tokens.clear()
    _camel_to_snake_cached.cache_clear()
