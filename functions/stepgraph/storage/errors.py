"""What the stores raise: each a write that could not happen as asked, and nothing half-written."""

from __future__ import annotations

from typing import Literal

__all__ = ["Conflict", "DocumentTooLarge", "HeadConflict", "SeqTaken", "ThreadMissing"]


class Conflict(Exception):
    """A conditional write lost: the resource was not in the expected state."""


class ThreadMissing(Exception):
    """The thread item does not exist (never created, or deleted meanwhile)."""


class DocumentTooLarge(Exception):
    """A resource's document does not fit in one item: nothing was written."""

    def __init__(self, size: int, limit: int):
        super().__init__(
            f"Request too large: it would be stored as a {size}-byte document, over the limit of "
            f"{limit} bytes per assistant, thread or run (DynamoDB items hold 400 KB)"
        )
        self.size = size


class HeadConflict(Exception):
    """A fenced commit was rejected: the head moved ("head") or the run lost its lease ("lease")."""

    def __init__(self, reason: Literal["head", "lease"], thread_id: str, expected_head: str | None):
        super().__init__(f"thread {thread_id}: fenced put rejected ({reason}), expected head {expected_head}")
        self.reason, self.thread_id, self.expected_head = reason, thread_id, expected_head


class SeqTaken(Exception):
    """Another writer already wrote this sequence number of the run's log."""
