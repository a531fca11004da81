"""The event loop graphs run on: one per process (a Lambda container), for its whole life.

Users' graphs are mostly `async def` nodes, so the step drives them with `astream`. A Lambda
handler is synchronous and, locally, many run at once on threads of one process; so the loop
lives in a thread of its own and each invocation hands it a coroutine. Keeping the loop (rather
than `asyncio.run` per call) keeps what users cache on it alive across invocations: an async
HTTP client, an LLM client's connection pool. Sync nodes run on the loop's executor, as LangGraph
runs them under `astream`; the executor is sized for many concurrent runs of blocking nodes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["run_on_engine_loop"]

T = TypeVar("T")

# Sync nodes (and asyncio.to_thread) share this pool. asyncio's default, cores + 4, would let six
# sleeping sync nodes of six concurrent local runs block every other run of the process.
_EXECUTOR_THREADS = 64

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _engine_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or not _thread or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            loop.set_default_executor(ThreadPoolExecutor(_EXECUTOR_THREADS, thread_name_prefix="stepgraph-node"))
            thread = threading.Thread(target=loop.run_forever, name="stepgraph-engine-loop", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def run_on_engine_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the process's engine loop and wait for its result (or exception)."""
    if _thread is not None and threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("run_on_engine_loop called from the engine loop itself: await the coroutine instead")
    return asyncio.run_coroutine_threadsafe(coro, _engine_loop()).result()
