"""Sync or async nodes: every example graph is built in the flavour `EXAMPLE_NODES` names
(`sync`, the default, or `async`), so the same graphs test both ways LangGraph runs a node.
Real projects mostly write `async def` nodes; the test suite serves both flavours."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

ASYNC = os.environ.get("EXAMPLE_NODES", "sync") == "async"


def node(sync_fn: Callable[..., Any], async_fn: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """The node in the flavour being served. A node that waits (sleeps, streams tokens) has an
    `async def` twin of its own; any other runs its sync body inline as an `async def` node."""
    if not ASYNC:
        return sync_fn
    if async_fn is not None:
        return async_fn

    @functools.wraps(sync_fn)  # the signature LangGraph inspects (config, runtime...) stays the same
    async def async_node(*args: Any, **kwargs: Any) -> Any:
        return sync_fn(*args, **kwargs)

    return async_node
