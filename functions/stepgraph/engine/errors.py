"""What the engine raises to its callers (the API, the handlers): its own errors, and the
storage errors that cross it unchanged."""

from __future__ import annotations

from stepgraph.storage import Conflict, DocumentTooLarge, HeadConflict, ThreadMissing

__all__ = [
    "ConfigError",
    "Conflict",
    "DocumentTooLarge",
    "HeadConflict",
    "RunsMissing",
    "ThreadMissing",
    "WebhookUrlRefused",
]


class ConfigError(ValueError):
    """`langgraph.json` or a graph it names cannot be loaded as configured."""


class RunsMissing(Exception):
    """Some of the runs named for a bulk cancel do not exist on that thread."""


class WebhookUrlRefused(ValueError):
    """A webhook URL the `webhooks.url` policy does not let a delivery go to (the API's 422)."""
