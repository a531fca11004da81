"""Run ids: UUIDv7s that sort in creation order, so a thread's key order is its queue order."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

__all__ = ["id_time_ms", "new_run_id"]

_lock = threading.Lock()
_last = (0, 0)  # (ms, counter) of the last run id made in this process


def _parts(run_id: str) -> tuple[int, int]:
    value = uuid.UUID(run_id).int
    return value >> 80, (value >> 64) & 0xFFF


def id_time_ms(run_id: str) -> int:
    """When the run id was made, in ms since the epoch."""
    return _parts(run_id)[0]


def new_run_id(after: str | None = None) -> str:
    """UUIDv7 whose 12-bit rand_a field is a counter (RFC 9562 §6.2, method 1): ids made here,
    and an id made `after` another, sort strictly after it, so key order is creation order."""
    global _last
    with _lock:
        floor = max(_last, _parts(after)) if after else _last
        ms = time.time_ns() // 1_000_000
        if ms > floor[0]:
            counter = random.getrandbits(11)  # half the range left for ids in the same ms
        else:
            ms, counter = floor[0], floor[1] + 1
            if counter > 0xFFF:
                ms, counter = ms + 1, 0
        _last = (ms, counter)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62
    value |= int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
