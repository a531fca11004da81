"""EventBridge for the local runtime: the rules and schedules that template.yaml gives its functions.

moto keeps rules and schedules but invokes no Lambda target and fires no schedule
(`reference/aws-emulation.md`). Here the events AWS services emit by themselves (Step Functions'
execution status changes, which the emulator reports through `on_execution_end`) are matched
against each function's `EventBridgeRule` pattern, with moto's own matcher, and delivered to the
function through moto's Lambda, as EventBridge invokes a target: asynchronously (a thread of its
own), retried twice if the function fails. Each `Schedule` event fires its function at its rate,
or every `schedule_seconds` when the runtime asks for another interval (tests). The invocations
are the EventBridge service's, no function's (the IAM record keeps them apart by thread, as it
does the SQS poller's); what the function then calls is the function's, as always.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from moto.events.models import EventPattern

from .emulator import _stepfunctions

if TYPE_CHECKING:
    from moto.events.utils import EventMessageType

    from .aws import LocalAWS

__all__ = ["LocalEventBridge"]

logger = logging.getLogger("stepgraph.local")

_RULE_EVENTS = ("EventBridgeRule", "CloudWatchEvent")
_SCHEDULE_EVENTS = ("Schedule", "ScheduleV2")
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first try and two retries


@dataclass(frozen=True)
class _Rule:
    function: str
    name: str
    pattern: EventPattern


@dataclass(frozen=True)
class _Schedule:
    function: str
    name: str
    every: float


class LocalEventBridge:
    """The template's event rules and schedules, targeting its functions, in the local account."""

    def __init__(self, aws: LocalAWS, *, schedule_seconds: float | None = None):
        self.aws = aws
        self.rules: list[_Rule] = []
        self.schedules: list[_Schedule] = []
        functions = {
            name: resource.get("Properties") or {}
            for name, resource in (aws.template.get("Resources") or {}).items()
            if resource.get("Type") == "AWS::Serverless::Function"
        }
        for function, props in functions.items():
            for name, event in (props.get("Events") or {}).items():
                kind, spec = event.get("Type"), event.get("Properties") or {}
                if kind in _RULE_EVENTS and spec.get("Pattern"):
                    pattern = EventPattern.load(json.dumps(aws.resolve(spec["Pattern"])))
                    self.rules.append(_Rule(function, f"{function}{name}", pattern))
                elif kind in _SCHEDULE_EVENTS:
                    expression = spec.get("Schedule") or spec.get("ScheduleExpression") or ""
                    every = schedule_seconds or _rate_seconds(str(aws.resolve(expression)))
                    if every is None:
                        logger.warning("%s.%s: only rate() schedules fire locally, not %r", function, name, expression)
                        continue
                    self.schedules.append(_Schedule(function, f"{function}{name}", every))
        # What was delivered, newest last: (function, event, its reply or error).
        self.delivered: collections.deque[tuple[str, dict[str, Any], Any]] = collections.deque(maxlen=200)
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalEventBridge:
        _stepfunctions.on_execution_end(self._execution_ended)
        self._threads = [threading.Thread(target=self._deliver_loop, name="eventbridge", daemon=True)]
        if self.schedules:
            schedules = threading.Thread(target=self._schedule_loop, name="eventbridge-schedules", daemon=True)
            self._threads.append(schedules)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Deliver nothing more (events still queued are dropped, as an account being torn down
        drops them). A delivery in progress gets `timeout` seconds to end; one that waits longer
        (split mode: its worker is gone) ends on its own, as any Lambda invocation in flight."""
        _stepfunctions.remove_listener(self._execution_ended)
        self._stopping.set()
        self._events.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ events
    def put(self, source: str, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        """An event from an AWS service, for the rules to deliver (later, on the delivery thread)."""
        self._events.put(self._event(source, detail_type, detail, resources))

    def deliver(self, event: dict[str, Any]) -> list[str]:
        """Invoke every function whose rule matches `event` now; returns those functions."""
        message = cast("EventMessageType", event)  # the same keys, typed by moto
        targets = [rule.function for rule in self.rules if rule.pattern.matches_event(message)]
        for function in targets:
            self._invoke(function, event)
        return targets

    def _execution_ended(self, detail: dict[str, Any]) -> None:
        self.put("aws.states", "Step Functions Execution Status Change", detail, [detail["executionArn"]])

    def _event(self, source: str, detail_type: str, detail: dict[str, Any], resources: list[str]) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": self.aws.account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.aws.region,
            "resources": resources,
            "detail": detail,
        }

    def _deliver_loop(self) -> None:
        while (event := self._events.get()) is not None and not self._stopping.is_set():
            try:
                self.deliver(event)
            except Exception:  # one event's delivery failing must not stop the next ones'
                logger.exception("delivering %s failed", event.get("detail-type"))

    def _invoke(self, function: str, event: dict[str, Any]) -> None:
        lam = self.aws.client("lambda")
        for attempt in range(_ATTEMPTS):
            reply = lam.invoke(FunctionName=function, Payload=json.dumps(event).encode())
            payload = json.loads(reply["Payload"].read() or b"null")
            if "FunctionError" not in reply:
                self.delivered.append((function, event, payload))
                return
            logger.error("%s failed on %s (attempt %d): %s", function, event["detail-type"], attempt + 1, payload)
            if self._stopping.wait(0.2 * 2**attempt):
                break
        self.delivered.append((function, event, {"failed": payload}))

    # ------------------------------------------------------------------ schedules
    def _schedule_loop(self) -> None:
        due = {schedule.name: time.monotonic() + schedule.every for schedule in self.schedules}
        while not self._stopping.is_set():
            now = time.monotonic()
            for schedule in self.schedules:
                if due[schedule.name] <= now:
                    due[schedule.name] = now + schedule.every
                    self.fire(schedule.name)
            self._stopping.wait(max(0.0, min(due.values()) - time.monotonic()))

    def fire(self, name: str) -> None:
        """Fire a schedule now (its "Scheduled Event"), as its rate would."""
        schedule = next(s for s in self.schedules if s.name == name)
        rule = f"arn:aws:events:{self.aws.region}:{self.aws.account_id}:rule/{name}"
        try:
            self._invoke(schedule.function, self._event("aws.events", "Scheduled Event", {}, [rule]))
        except Exception:  # the next tick fires again
            logger.exception("schedule %s failed", name)


def _rate_seconds(expression: str) -> float | None:
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]
