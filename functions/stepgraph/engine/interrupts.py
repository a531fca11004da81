"""Human-in-the-loop options of a run: where the run stops for a human and how long it waits.

`interrupt_before` / `interrupt_after` are the peer's. `interrupt_deadline_seconds` and
`on_interrupt_deadline` are stepgraph's: a parked run waits on Park's task token with
`TimeoutSecondsPath` = the deadline, and when it passes, Finish (outcome "expired") applies the
action: `{"action": "resume", "value": v}` resumes the thread with `v` in the same execution,
`{"action": "end"}` (the default) ends the parked run with status `timeout`.

Each option is read from the run body, else from the run's `config`, else from the assistant's
`config` (as snapshotted on the run): the SDK has no parameter for stepgraph's own options, but
passes `config` through.
"""

from __future__ import annotations

from typing import Any

# Step Functions' ceiling for a task token wait is a year; a run may ask for less.
DEFAULT_PARK_TIMEOUT_SECONDS = 365 * 24 * 3600

RUN_OPTIONS = ("interrupt_before", "interrupt_after", "interrupt_deadline_seconds", "on_interrupt_deadline")


def run_option(run: dict[str, Any], name: str, assistant: dict[str, Any] | None = None) -> Any:
    """A run option: the run body, else the run's config, else the assistant's config."""
    kwargs = run.get("kwargs") or {}
    if kwargs.get(name) is not None:
        return kwargs[name]
    value = (kwargs.get("config") or {}).get(name)
    if value is not None:
        return value
    a_config = run["assistant_config"] if "assistant_config" in run else (assistant or {}).get("config")
    return (a_config or {}).get(name)


def park_timeout_seconds(run: dict[str, Any], assistant: dict[str, Any] | None = None) -> int:
    value = run_option(run, "interrupt_deadline_seconds", assistant)
    try:
        seconds = int(value) if value is not None else DEFAULT_PARK_TIMEOUT_SECONDS
    except (TypeError, ValueError):
        seconds = DEFAULT_PARK_TIMEOUT_SECONDS
    return min(max(seconds, 1), DEFAULT_PARK_TIMEOUT_SECONDS)


def deadline_action(run: dict[str, Any], assistant: dict[str, Any] | None = None) -> dict[str, Any]:
    """`{"action": "resume", "value": ...}` or `{"action": "end"}`."""
    action = run_option(run, "on_interrupt_deadline", assistant)
    if isinstance(action, dict) and action.get("action") == "resume":
        return {"action": "resume", "value": action.get("value")}
    return {"action": "end"}
