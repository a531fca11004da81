"""The one place that calls EventBridge Scheduler: each cron is one schedule of the stack's
schedule group, named after it, whose target is the cron function.

Every schedule is a one-shot `at()` of the cron's next fire, in UTC, re-armed by the cron
function at each fire (`crons.fire_cron`). EventBridge's own `cron()` cannot say every 5-field
expression (day-of-month and day-of-week both set, `?` rules, DST as croniter and Vixie cron
read it), while `at()` of an instant computed by `crontime` is exact for all of them, and one
kind of schedule is one code path, locally too. The price is one UpdateSchedule per fire.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from stepgraph.settings import Settings
from stepgraph.vocabulary import AwsError, error_code

__all__ = ["CronSchedules", "FireEvent", "at_expression", "iso_utc", "schedule_name"]

logger = logging.getLogger(__name__)

FireEvent = dict[str, str]  # what the schedule delivers to the cron function: {"cron_id", "fire_at"}


def schedule_name(cron_id: str) -> str:
    return f"cron-{cron_id}"


def at_expression(instant: datetime) -> str:
    """`at(yyyy-mm-ddThh:mm:ss)` of an aware instant, read in UTC (ScheduleExpressionTimezone)."""
    return "at(" + instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + ")"


class CronSchedules:
    """Arms, disarms and removes each cron's schedule."""

    def __init__(self, client: Any, settings: Settings):
        self.client, self.settings = client, settings

    def arm(self, cron_id: str, fire_at: datetime, *, active: bool) -> None:
        """The cron's schedule fires at `fire_at` (UTC) if `active`, else it is DISABLED (kept,
        so enabling it again is one update). Creates the schedule if it is missing."""
        target = {"Arn": self.settings.cron_function_arn, "RoleArn": self.settings.scheduler_role_arn}
        request = self._request(cron_id, fire_at, active, target)
        try:
            self.client.update_schedule(**request)
        except ClientError as exc:
            if error_code(exc) != AwsError.RESOURCE_NOT_FOUND:
                raise
            self.client.create_schedule(**request)

    def rearm(self, cron_id: str, fire_at: datetime, *, active: bool) -> bool:
        """`arm`, from the cron function at a fire: the target and role are the schedule's own
        (the function cannot be named in its own environment). False if the schedule is gone
        (the cron was deleted meanwhile)."""
        try:
            got = self.client.get_schedule(Name=schedule_name(cron_id), GroupName=self.settings.schedule_group)
            target = {"Arn": got["Target"]["Arn"], "RoleArn": got["Target"]["RoleArn"]}
            self.client.update_schedule(**self._request(cron_id, fire_at, active, target))
        except ClientError as exc:
            if error_code(exc) != AwsError.RESOURCE_NOT_FOUND:
                raise
            logger.info("schedule of cron %s is gone (deleted): not re-armed", cron_id)
            return False
        return True

    def remove(self, cron_id: str) -> None:
        try:
            self.client.delete_schedule(Name=schedule_name(cron_id), GroupName=self.settings.schedule_group)
        except ClientError as exc:
            if error_code(exc) != AwsError.RESOURCE_NOT_FOUND:
                raise
            logger.info("schedule of cron %s was already gone", cron_id)

    def _request(self, cron_id: str, fire_at: datetime, active: bool, target: dict[str, str]) -> dict[str, Any]:
        event: FireEvent = {"cron_id": cron_id, "fire_at": iso_utc(fire_at)}
        return {
            "Name": schedule_name(cron_id),
            "GroupName": self.settings.schedule_group,
            "ScheduleExpression": at_expression(fire_at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED" if active else "DISABLED",
            # Kept after it fires: the next fire is an update of it.
            "ActionAfterCompletion": "NONE",
            "Target": {**target, "Input": json.dumps(event)},
        }


def iso_utc(instant: datetime) -> str:
    """An aware instant as the API shows dates: ISO 8601 in UTC."""
    return instant.astimezone(UTC).isoformat()
