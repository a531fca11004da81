"""How assistants, threads and runs are stored: each resource one JSON document in one item.

Beside the document, at the top level, an item keeps the attributes that conditions read
(status, active_run_id, ...), so a resource round-trips exactly and no Decimal conversion leaks
into the API.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from stepgraph import serde
from stepgraph.storage.dynamo import Item, s
from stepgraph.storage.errors import DocumentTooLarge

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "USAGE_PREFIX",
    "Document",
    "check_document_size",
    "doc_item",
    "doc_json",
    "documents",
    "from_item",
    "now_iso",
    "strip_top",
]

Document = dict[str, Any]  # a resource as the API shows it

# A DynamoDB item holds at most 400 KB. An assistant, thread or run is one JSON document in one
# item, so the document may take this much, leaving the rest for keys and queue attributes.
# Documents are refused, not spilled: they hold what clients send (input, metadata, config),
# and 350 KB of that is far beyond what a run request needs (graph state lives in checkpoints).
MAX_DOCUMENT_BYTES = 350_000

# Written by conditional updates, so they live at the top level, not in the document
# (`execution`: the Step Functions execution that carries a running run).
_TOP = ("status", "active_run_id", "parked_run_id", "task_token", "execution")
# A run's AWS usage, one number attribute per key (`usage:dynamodb.write_units`), each added to
# by every invocation (RunStore.add_usage); read back as the document's `aws_usage`.
USAGE_PREFIX = "usage:"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def doc_json(doc: Document) -> str:
    """The document as stored; raises DocumentTooLarge if it would not fit in an item."""
    text = serde.dumps_str(doc)
    size = len(text.encode())
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(size, MAX_DOCUMENT_BYTES)
    return text


def check_document_size(doc: Document) -> None:
    """Raise DocumentTooLarge now for a document that could not be written later."""
    doc_json(doc)


def doc_item(doc: Document, **top: str | int | None) -> Item:
    """The item's attributes: the document and the `top` attributes that are not None."""
    item: Item = {"doc": s(doc_json(doc))}
    for name, value in top.items():
        if value is not None:
            item[name] = s(value) if isinstance(value, str) else {"N": str(value)}
    return item


def from_item(item: Item | None) -> Document | None:
    if not item:
        return None
    doc: Document = serde.loads(item["doc"]["S"])
    for name in (*_TOP, "updated_at"):
        if name in item:
            doc[name] = item[name]["S"]
    for name, value in item.items():
        # Fields set by conditional updates live beside the document, so a status change is
        # one UpdateItem instead of a read-modify-write of the whole document.
        if name.startswith("x_"):
            doc[name[2:]] = serde.loads(value["S"])
        elif name.startswith(USAGE_PREFIX):
            doc.setdefault("aws_usage", {})[name[len(USAGE_PREFIX) :]] = float(value["N"])
    return doc


def documents(items: Iterable[Item]) -> list[Document]:
    return [doc for doc in map(from_item, items) if doc]


def strip_top(doc: Document) -> Document:
    """The document without the attributes that live at the top level of its item."""
    return {k: v for k, v in doc.items() if k not in _TOP and k != "aws_usage"}
