"""moto's DynamoDB as the local runtime needs it: two fixes, then three speed-ups.

(And one limit moto does not enforce: a TransactWriteItems over 4 MB is refused, as on AWS, so
that a write path that could exceed it fails here first; see 2.)

1. moto's backend is not thread-safe, and the local runtime calls it from many threads at once
   (Step Functions executions, the API's worker threads, event writers). Every DynamoDB request
   is serialised by one lock, as DynamoDB's own per-item atomicity would order them.
2. moto's TransactWriteItems deep-copies every table it touches before each transaction and
   restores those copies if a condition fails: O(table size) per call (tens of ms once the
   checkpoint table holds thousands of items) and, under concurrency, a restore that erases other
   writers' items. This version checks every condition first, then applies the writes, and on a
   failure while applying restores only the items it touched: DynamoDB's all-or-nothing semantics.
3. moto's Query on a table (not an index) lists and sorts every item of the table to keep the
   queried partition's: O(table) per Query, which made every run slower than the one before
   (2.5 runs/s after 500 runs, against 10 at start). This version reads only the partition.
4. moto parses a DynamoDB update expression twice per UpdateItem (and per Update of a
   transaction): ~110 us each for `SET a = :a, #s = :s REMOVE b`, and the runtime only ever sends
   a handful of distinct expressions. The parse depends on the string alone; its tree is later
   mutated (placeholders are replaced by values), so each caller gets a new tree: the first parse
   is kept pickled and unpickled per call (~15 us; plain objects, parent links included). Invalid
   expressions raise as before (never cached); with moto's parser logging at DEBUG the cache is
   bypassed, so the log is unchanged too.
5. Likewise moto lexes each condition expression twice per conditional write (~55 us for
   `attribute_not_exists(a) AND contains(p, :e) AND b = :b`), from the string alone. The tokens
   are kept; each caller gets new nodes, equal to the lexer's own (an empty `children` list each,
   as the lexer makes them). Values and names are substituted afterwards, by moto.
"""

from __future__ import annotations

import copy
import logging
import pickle
import threading
from collections import deque
from collections.abc import Collection
from typing import Any

from moto.dynamodb.comparisons import ConditionExpressionParser, get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend, UpdateExpressionParser
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from . import require_moto
from ._patches import Patches

SPEED_UPS = ("query_partition", "update_parse", "condition_lex")
_CACHE_LIMIT = 50_000  # entries per cache; cleared when full
_lock = threading.RLock()
serialised = _lock  # held while moto serves a DynamoDB request (the data folder's journal takes it too)
_patches = Patches()
_originals: dict[str, Any] = {}


# ---------------------------------------------------------------- 1. one request at a time
def _serialised_call_action(self: DynamoHandler) -> Any:
    with _lock:
        return _originals["call_action"](self)


# ---------------------------------------------------------------- 2. all-or-nothing transactions
def _key_of(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


# AWS: "the aggregate size of the items in the transaction cannot exceed 4 MB".
_TRANSACTION_BYTES = 4 * 1024 * 1024


def _value_bytes(value: Any) -> int:
    """An attribute value's size as DynamoDB counts it, near enough: binary by its length, strings by
    their UTF-8 bytes, collections by their members."""
    if isinstance(value, dict):
        kind, inner = next(iter(value.items())) if len(value) == 1 else ("M", value)
        if kind == "B":  # decoded by moto's handler; base64 if it ever is not
            return len(inner) if isinstance(inner, bytes) else len(inner) * 3 // 4
        if kind in ("S", "N"):
            return len(str(inner).encode())
        if kind == "M":
            return sum(len(k.encode()) + _value_bytes(v) for k, v in inner.items())
        if kind in ("L", "SS", "NS", "BS"):
            return sum(_value_bytes(v) if isinstance(v, dict) else len(str(v).encode()) for v in inner)
    return 1


def _transaction_bytes(transact_items: list[dict[str, Any]]) -> int:
    total = 0
    for entry in transact_items:
        for op in entry.values():
            if isinstance(op, dict):
                total += sum(_value_bytes(op.get(part) or {}) for part in ("Item", "Key", "ExpressionAttributeValues"))
    return total


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    if _transaction_bytes(transact_items) > _TRANSACTION_BYTES:
        raise MockValidationException("Transaction request cannot be larger than 4 MB")
    targets: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    plan: list[tuple[str, Any, dict[str, Any], Any]] = []  # operation type, request, key, item before
    for entry in transact_items:  # phase 1: every condition against the state before any write
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        key = _key_of(self, op_type, op)
        target = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = self.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        if condition is not None:
            check = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not check.expr(current):
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                errors.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
                continue
        errors.append((None, None, None))
        plan.append((op_type, op, key, copy.deepcopy(current)))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    applied: list[tuple[str, dict[str, Any], Any]] = []
    try:  # phase 2: the writes (conditions already hold: nothing else runs under the lock)
        for op_type, op, key, before in plan:
            table_name = op["TableName"]
            if op_type == "Put":
                self.put_item(table_name, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table_name, key)
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=op.get("ExpressionAttributeNames"),
                    expression_attribute_values=op.get("ExpressionAttributeValues"),
                )
            applied.append((table_name, key, before))
    except Exception:
        for table_name, key, before in reversed(applied):
            if before is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before.to_json()["Attributes"])
        raise


# ---------------------------------------------------------------- 3. a Query reads its partition
_partition = threading.local()


def _query(
    self: Table,
    hash_key: Any,
    range_comparison: Any,
    range_objs: Any,
    limit: Any,
    exclusive_start_key: Any,
    scan_index_forward: Any,
    projection_expressions: Any,
    index_name: str | None = None,
    *args: Any,
    **kwargs: Any,
) -> Any:
    if index_name is None:
        _partition.table, _partition.hash_key = self, hash_key
    try:
        return _originals["query"](
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            *args,
            **kwargs,
        )
    finally:
        _partition.table = None


def _all_items(self: Table) -> list[Any]:
    if getattr(_partition, "table", None) is not self:
        return _originals["all_items"](self)
    items = self.items.get(_partition.hash_key)  # the base-table query's only candidates
    if items is None:
        return []
    return list(items.values()) if self.range_key_attr else [items]


# ---------------------------------------------------------------- 4. update expression trees
_update_trees: dict[str, bytes] = {}
_update_expression_log = logging.getLogger("moto.dynamodb.parsing.expressions")  # the parser's logger


def _make_update_expression(cls: type, expression_str: Any) -> Any:
    make = _originals["make_update_expression"].__func__
    if (
        cls is not UpdateExpressionParser
        or type(expression_str) is not str
        or _update_expression_log.isEnabledFor(logging.DEBUG)
    ):
        return make(cls, expression_str)
    pickled = _update_trees.get(expression_str)
    if pickled is not None:
        return pickle.loads(pickled)
    tree = make(cls, expression_str)  # raises for an invalid expression: nothing cached
    if len(_update_trees) >= _CACHE_LIMIT:
        _update_trees.clear()
    _update_trees[expression_str] = pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)
    return tree


# ---------------------------------------------------------------- 5. condition expression tokens
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


# ---------------------------------------------------------------- install
def install(without: Collection[str] = ()) -> None:
    """Idempotent. `without`: names of SPEED_UPS to leave out (the two fixes are not optional)."""
    require_moto("dynamodb")
    if _patches:
        return
    replace = _patches.replace
    _originals["call_action"] = replace(DynamoHandler, "call_action", _serialised_call_action)
    replace(DynamoDBBackend, "transact_write_items", _transact_write_items)
    if "query_partition" not in without:
        _originals["query"] = replace(Table, "query", _query)
        _originals["all_items"] = replace(Table, "all_items", _all_items)
    if "update_parse" not in without:
        _originals["make_update_expression"] = replace(
            UpdateExpressionParser, "make", classmethod(_make_update_expression)
        )
    if "condition_lex" not in without:
        lex = _lex_condition_expression
        _originals["lex_condition_expression"] = replace(ConditionExpressionParser, "_lex_condition_expression", lex)


def uninstall() -> None:
    _patches.revert()
    _update_trees.clear()
    _condition_tokens.clear()
