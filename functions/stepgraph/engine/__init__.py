"""The engine: what the Lambdas do to runs and threads."""

from stepgraph.engine.context import Context, current_context, set_context
from stepgraph.engine.lifecycle import admit_next_run, finish_run, insert_run, park_run
from stepgraph.engine.runner import StepResult, run_supersteps

__all__ = [
    "Context",
    "StepResult",
    "admit_next_run",
    "current_context",
    "finish_run",
    "insert_run",
    "park_run",
    "run_supersteps",
    "set_context",
]
