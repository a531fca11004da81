"""Where stepgraph keeps its state on AWS: one small interface per concern, each a DynamoDB table
(and the spill bucket for large values).

- `AssistantStore`, `ThreadStore`, `RunStore`: the resources of the API, one document an item.
- `CronStore`: crons, and the record of each fire (one run per fire).
- `ThreadQueue`: each thread's lease and queue of pending runs, on the thread item.
- `EventLog`: each run's stream events, tailed by the API.
- `DynamoDBSaver`: LangGraph's checkpoints, fenced by the thread's head and the run's lease.
- `DynamoDBStore`: LangGraph's long-term store (`runtime.store`, the API's /store routes).

What they raise is in `errors`; the DynamoDB helpers they share in `dynamo`.
"""

from stepgraph.storage.assistants import AssistantStore
from stepgraph.storage.checkpoints import DynamoDBSaver, Fence, LeaseCondition
from stepgraph.storage.crons import CronStore, FireRecord
from stepgraph.storage.documents import MAX_DOCUMENT_BYTES, check_document_size, now_iso
from stepgraph.storage.errors import Conflict, DocumentTooLarge, HeadConflict, SeqTaken, ThreadMissing
from stepgraph.storage.events import (
    END,
    END_SEQ,
    Event,
    EventLog,
    InProcessNotifier,
    Notifier,
    PollingNotifier,
    Subscription,
)
from stepgraph.storage.queue import QueueState, ThreadQueue, entry_due_ms, entry_run_id, queue_entry
from stepgraph.storage.runs import RunStore
from stepgraph.storage.store import DynamoDBStore
from stepgraph.storage.threads import ThreadStore

__all__ = [
    "END",
    "END_SEQ",
    "MAX_DOCUMENT_BYTES",
    "AssistantStore",
    "Conflict",
    "CronStore",
    "DocumentTooLarge",
    "DynamoDBSaver",
    "DynamoDBStore",
    "Event",
    "EventLog",
    "Fence",
    "FireRecord",
    "HeadConflict",
    "InProcessNotifier",
    "LeaseCondition",
    "Notifier",
    "PollingNotifier",
    "QueueState",
    "RunStore",
    "SeqTaken",
    "Subscription",
    "ThreadMissing",
    "ThreadQueue",
    "ThreadStore",
    "check_document_size",
    "entry_due_ms",
    "entry_run_id",
    "now_iso",
    "queue_entry",
]
