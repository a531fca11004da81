"""Graphs for tests/functional/test_restart.py: `counted`, a loop of `steps` supersteps that
writes each superstep it executes to a side file (so a test can count what ran twice across a
restart), sleeping STEP_DELAY seconds in each; `approval`, one interrupt."""

from __future__ import annotations

import os
import time
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class Counter(TypedDict, total=False):
    count: int
    steps: int


def tick(state: Counter) -> Counter:
    step = state.get("count", 0) + 1
    with open(os.environ["RESTART_TEST_STEPS_FILE"], "a") as out:  # one line per execution
        out.write(f"{os.getpid()} {step}\n")
    time.sleep(float(os.environ.get("RESTART_TEST_STEP_DELAY", "0.05")))
    return {"count": step}


def again(state: Counter) -> str:
    return "tick" if state.get("count", 0) < state.get("steps", 50) else END


_counted = StateGraph(Counter)
_counted.add_node("tick", tick)
_counted.add_edge(START, "tick")
_counted.add_conditional_edges("tick", again, ["tick", END])
counted = _counted.compile().with_config(recursion_limit=1_000)


class Answer(TypedDict, total=False):
    question: str
    answer: str


def ask(state: Answer) -> Answer:
    return {"answer": str(interrupt({"question": state.get("question", "approve?")}))}


_approval = StateGraph(Answer)
_approval.add_node("ask", ask)
_approval.add_edge(START, "ask")
_approval.add_edge("ask", END)
approval = _approval.compile()
