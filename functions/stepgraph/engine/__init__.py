"""The engine: what happens to runs and threads. The Lambda handlers and the HTTP API use only
what this module exports; the rooms behind it:

- `admission`: a new run queues on its thread (double-texting) and the first due run starts
- `execution`: the one place that calls Step Functions and SQS (executions, task tokens, doorbell)
- `runner`: a Step invocation runs supersteps of the graph and checkpoints them
- `completion`: the state machine reports a run parked on an interrupt, or finished
- `handover`: a long run goes on in a fresh execution before the execution's history cap
- `recovery`: the reaper (an execution that ended without Finish) and the lost-doorbell sweeper
- `cancellation`: cancel and rollback
- `crons`: crons and their fires (`crontime`: when; `schedules`: EventBridge Scheduler)
- `deadlines`: a parked run's human-input deadline
- `lease`: who holds a thread and the status it settles to
- `admin`: operations over many threads or runs (delete, prune, bulk cancel, queue counts)
- `webhooks`: a run's end queued for its webhook, and delivered (signed, retried, dead-lettered)
- `webhook_urls`: where a webhook may go (langgraph.json's `webhooks.url`), checked at every hop
- `access`: the authenticated user a run carries to its graph; metadata filters
- `usage`: what an invocation used on AWS, added onto its run's bill
- `state`, `graphs`, `streaming`, `protocol`, `interrupts`, `ids`, `context`, `eventloop`
"""

from stepgraph.engine.access import AuthUser, matches_filter, metadata_filter, user_fields
from stepgraph.engine.admin import cancel_runs, delete_thread, new_thread, prune_threads, queue_counts
from stepgraph.engine.admission import admit_next_run, base_run, submit_run
from stepgraph.engine.cancellation import cancel_run
from stepgraph.engine.completion import finish_run, park_run
from stepgraph.engine.context import Context, current_context, set_context
from stepgraph.engine.crons import RUN_FIELDS, create_cron, cron_active, delete_cron, fire_cron, update_cron
from stepgraph.engine.crontime import InvalidSchedule, check_schedule, next_fire
from stepgraph.engine.errors import (
    ConfigError,
    Conflict,
    DocumentTooLarge,
    HeadConflict,
    RunsMissing,
    ThreadMissing,
    WebhookUrlRefused,
)
from stepgraph.engine.graphs import system_assistant_id
from stepgraph.engine.protocol import (
    CHANNELS,
    RUN_STREAM_MODES,
    RunTranslator,
    matches,
    run_position,
    thread_ms,
    thread_seq,
)
from stepgraph.engine.recovery import reap_execution, ring_lost_doorbells
from stepgraph.engine.runner import StepResult, run_supersteps
from stepgraph.engine.state import (
    bound_graph,
    get_thread_state,
    snapshot_to_wire,
    state_config,
    thread_graph,
    update_thread_state,
)
from stepgraph.engine.usage import (
    COST_KEY,
    PARK_TRANSITIONS,
    Bill,
    billed_invocation,
    charge_run,
    finish_transitions,
    step_transitions,
)
from stepgraph.engine.webhook_urls import WebhookUrlPolicy, check_run_webhook
from stepgraph.engine.webhooks import WebhookConfig, deliver_webhook, sign_webhook
from stepgraph.storage import END, END_SEQ, Event, check_document_size, now_iso

__all__ = [
    "CHANNELS",
    "COST_KEY",
    "END",
    "END_SEQ",
    "PARK_TRANSITIONS",
    "RUN_FIELDS",
    "RUN_STREAM_MODES",
    "AuthUser",
    "Bill",
    "ConfigError",
    "Conflict",
    "Context",
    "DocumentTooLarge",
    "Event",
    "HeadConflict",
    "InvalidSchedule",
    "RunTranslator",
    "RunsMissing",
    "StepResult",
    "ThreadMissing",
    "WebhookConfig",
    "WebhookUrlPolicy",
    "WebhookUrlRefused",
    "admit_next_run",
    "base_run",
    "billed_invocation",
    "bound_graph",
    "cancel_run",
    "cancel_runs",
    "charge_run",
    "check_document_size",
    "check_run_webhook",
    "check_schedule",
    "create_cron",
    "cron_active",
    "current_context",
    "delete_cron",
    "delete_thread",
    "deliver_webhook",
    "finish_run",
    "finish_transitions",
    "fire_cron",
    "get_thread_state",
    "matches",
    "matches_filter",
    "metadata_filter",
    "new_thread",
    "next_fire",
    "now_iso",
    "park_run",
    "prune_threads",
    "queue_counts",
    "reap_execution",
    "ring_lost_doorbells",
    "run_position",
    "run_supersteps",
    "set_context",
    "sign_webhook",
    "snapshot_to_wire",
    "state_config",
    "step_transitions",
    "submit_run",
    "system_assistant_id",
    "thread_graph",
    "thread_ms",
    "thread_seq",
    "update_cron",
    "update_thread_state",
    "user_fields",
]
