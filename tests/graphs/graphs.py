"""Graphs for the double-texting, retry and fault tests: deterministic, with knobs for time, with
sync or async nodes as `EXAMPLE_NODES` says (examples/flavors.py)."""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from pathlib import Path
from typing import Annotated

from botocore.exceptions import ClientError
from flavors import node
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, interrupt
from typing_extensions import TypedDict  # pydantic builds its JSON schemas on Python 3.11 too


class Nap(TypedDict, total=False):
    items: Annotated[list[str], operator.add]
    pause: float


def _nap(state: Nap) -> Nap:
    time.sleep(state.get("pause", 0))
    return {"items": ["slept"]}


async def _anap(state: Nap) -> Nap:
    await asyncio.sleep(state.get("pause", 0))
    return {"items": ["slept"]}


# nap: the input's items, then one node that sleeps `pause` seconds and appends "slept"
# (the peer's double-texting observations use the same shape).
_g = StateGraph(Nap)
_g.add_node("nap", node(_nap, _anap))
_g.add_edge(START, "nap")
_g.add_edge("nap", END)
nap = _g.compile()


class Count(TypedDict, total=False):
    count: int
    steps: int
    pause: float


def _tick(state: Count) -> Count:
    time.sleep(state.get("pause", 0))
    return {"count": state.get("count", 0) + 1}


async def _atick(state: Count) -> Count:
    await asyncio.sleep(state.get("pause", 0))
    return {"count": state.get("count", 0) + 1}


def _again(state: Count) -> str:
    return "tick" if state.get("count", 0) < state.get("steps", 10) else END


# counter: `steps` supersteps of one node each sleeping `pause` seconds.
_g = StateGraph(Count)
_g.add_node("tick", node(_tick, _atick))
_g.add_edge(START, "tick")
_g.add_conditional_edges("tick", _again, ["tick", END])
counter = _g.compile().with_config(recursion_limit=10_000)


_attempts: dict[str, int] = {}
_lock = threading.Lock()


def _flaky(state: Nap, config) -> Nap:
    run_id = config["configurable"]["run_id"]
    with _lock:
        _attempts[run_id] = attempt = _attempts.get(run_id, 0) + 1
    if attempt < 3:
        raise ConnectionError(f"transient failure {attempt}")
    return {"items": [f"ok after {attempt} attempts"]}


# flaky: fails its first two attempts in each run; LangGraph's RetryPolicy retries it in-step.
_g = StateGraph(Nap)
_g.add_node("flaky", node(_flaky), retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
_g.add_edge(START, "flaky")
_g.add_edge("flaky", END)
flaky = _g.compile()


def _storage_fault(state: Nap) -> Nap:
    raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem")


# storage_fault: the node's storage call always fails; not the graph's error but the step's,
# so the state machine retries the step until its retries run out.
_g = StateGraph(Nap)
_g.add_node("write", node(_storage_fault))
_g.add_edge(START, "write")
_g.add_edge("write", END)
storage_fault = _g.compile()


def _ask(state: Nap) -> Nap:
    return {"items": [f"answer:{interrupt('approve?')}"]}


# ask: stops on interrupt() until a human resumes it (its execution parks on a task token).
_g = StateGraph(Nap)
_g.add_node("ask", node(_ask))
_g.add_edge(START, "ask")
_g.add_edge("ask", END)
ask = _g.compile()


class Stall(TypedDict, total=False):
    count: int
    steps: int
    stall_at: int
    pause: float
    marker: str


def _stall_tick(state: Stall) -> Stall:
    """At count == stall_at the first attempt sleeps `pause` seconds (longer than the Step
    Lambda's timeout); retries do not. `marker` (a file) remembers the attempt across worker
    processes and records when the stalled attempt returned."""
    marker = Path(state["marker"])
    if state.get("count", 0) == state["stall_at"] and not marker.exists():
        marker.write_text("stalled")
        time.sleep(state["pause"])
        marker.write_text("returned")
    return {"count": state.get("count", 0) + 1}


def _stall_again(state: Stall) -> str:
    return "tick" if state.get("count", 0) < state["steps"] else END


# stall: `steps` supersteps; the first attempt of one of them outlives the Lambda timeout.
_g = StateGraph(Stall)
_g.add_node("tick", node(_stall_tick))
_g.add_edge(START, "tick")
_g.add_conditional_edges("tick", _stall_again, ["tick", END])
stall = _g.compile()
