"""EventBridge Scheduler for the local runtime: moto stores schedules but never fires them
(`reference/aws-emulation.md`), so this loop reads the emulated Scheduler's own schedules (moto's
backend state, as `events` reads the template's rules) and, when one is due, invokes its target
with its `Input`, as the real service does: the same Lambda, the same payload, asynchronously,
retried when the function fails. stepgraph arms every cron as a one-shot `at()` schedule
(`stepgraph.engine.schedules`); those are what fire here, each once per expression it is armed
with, and only while ENABLED (one that comes due while DISABLED is spent, as on AWS). The
invocations are the Scheduler service's, no function's (the IAM record keeps them apart by
thread name, `eventbridge-scheduler`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from moto.scheduler.models import scheduler_backends

if TYPE_CHECKING:
    from .aws import LocalAWS

__all__ = ["LocalScheduler"]

logger = logging.getLogger("stepgraph.local")

_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_ATTEMPTS = 3


class LocalScheduler:
    """Fires the emulated account's due `at()` schedules; `interval`: how often it looks."""

    def __init__(self, aws: LocalAWS, *, interval: float = 1.0):
        self.aws, self.interval = aws, interval
        self.fired: set[tuple[str, str]] = set()  # (schedule ARN, expression): each at() fires once
        # What was delivered, newest last: (schedule ARN, payload, the function's reply or error).
        self.delivered: deque[tuple[str, dict[str, Any], Any]] = deque(maxlen=200)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="eventbridge-scheduler", daemon=True)
        self._unsupported: set[str] = set()

    def start(self) -> LocalScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.fire_due()
            except Exception:  # the next tick looks again
                logger.exception("local scheduler tick failed")

    def fire_due(self, now: datetime | None = None, names: set[str] | None = None) -> list[str]:
        """Fire every enabled schedule due at `now` (default: now) not fired yet (of those named
        `names`, if given: tests fire one schedule ahead of its time); their ARNs."""
        backend = scheduler_backends[self.aws.account_id][self.aws.region]
        fired = []
        for group in list(backend.schedule_groups.values()):
            for schedule in list(group.schedules.values()):
                if names is not None and schedule.name not in names:
                    continue
                due = self._due(schedule, now)
                key = (schedule.arn, schedule.schedule_expression)
                if due is None or key in self.fired:
                    continue
                self.fired.add(key)
                if schedule.state != "ENABLED":
                    continue  # spent while disabled
                target = dict(schedule.target)
                threading.Thread(
                    target=self._invoke, args=(schedule.arn, target), name="eventbridge-scheduler-fire", daemon=True
                ).start()
                fired.append(schedule.arn)
        return fired

    def _due(self, schedule: Any, now: datetime | None) -> datetime | None:
        match = _AT.fullmatch(schedule.schedule_expression or "")
        if match is None:
            if schedule.arn not in self._unsupported:
                self._unsupported.add(schedule.arn)
                expression = schedule.schedule_expression
                logger.warning("%s: only at() schedules fire locally, not %r", schedule.arn, expression)
            return None
        zone = ZoneInfo(schedule.schedule_expression_timezone or "UTC")
        at = datetime.fromisoformat(match.group(1)).replace(tzinfo=zone)
        return at if at <= (now or datetime.now(zone)) else None

    def _invoke(self, arn: str, target: dict[str, Any]) -> None:
        try:
            self._deliver(arn, target)
        except Exception:  # a thread of its own: nobody else would hear of it
            logger.exception("schedule %s: delivery failed", arn)

    def _deliver(self, arn: str, target: dict[str, Any]) -> None:
        payload = json.loads(target.get("Input") or "{}")
        lam = self.aws.client("lambda")
        for attempt in range(_ATTEMPTS):
            reply = lam.invoke(FunctionName=target["Arn"], Payload=json.dumps(payload).encode())
            result = json.loads(reply["Payload"].read() or b"null")
            if "FunctionError" not in reply:
                self.delivered.append((arn, payload, result))
                return
            logger.error("schedule %s: target failed (attempt %d): %s", arn, attempt + 1, result)
            if self._stopping.wait(0.2 * 2**attempt):
                break
        self.delivered.append((arn, payload, {"failed": result}))
