"""Leave a shared server as a test found it: delete the threads, user assistants and crons made since."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx


@contextmanager
def removing_what_is_created(url: str) -> Iterator[None]:
    """Tests that create resources by the hundred (fuzzing) must not change what later tests on
    the same session server search or count."""
    since = datetime.now(UTC).isoformat()
    try:
        yield
    finally:
        with httpx.Client(base_url=url, timeout=30) as client:
            for kind, key in (("threads", "thread_id"), ("assistants", "assistant_id"), ("runs/crons", "cron_id")):
                while True:
                    found = client.post(
                        f"/{kind}/search", json={"limit": 1000, "sort_by": "created_at", "sort_order": "desc"}
                    ).json()
                    stale = [
                        item[key]
                        for item in found
                        if item["created_at"] >= since and (item.get("metadata") or {}).get("created_by") != "system"
                    ]
                    for item_id in stale:
                        client.delete(f"/{kind}/{item_id}")
                    if len(stale) < 1000:
                        break
