"""When a cron fires: a 5-field expression (anything `croniter` accepts) read as wall-clock time in
an IANA timezone, turned into UTC instants, exactly, across daylight-saving changes.

A wall time the clocks skip (spring forward) fires at the instant of the jump: `30 2 * * *` in
New York on 8 March 2026 fires at 03:00 EDT; several skipped times fire once. A wall time the
clocks repeat (fall back) fires once, at its first occurrence, unless the expression runs every
hour (hour field `*`): then the repeated hour is an hour like any other and fires again, so
`*/15 * * * *` fires every 15 minutes of real time through the change. This is how Vixie cron
treats the two changes, and what a user reading the schedule expects.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter  # type: ignore[import-untyped]

__all__ = ["InvalidSchedule", "check_schedule", "next_fire", "zone"]

# Far enough back from `after` that a repeated hour's second occurrence is still ahead of it.
_LOOKBACK = timedelta(hours=3)
_LOOKAHEAD = timedelta(hours=3)  # once a fire is found, how much later a wall time may give an earlier one


class InvalidSchedule(ValueError):
    """A schedule croniter refuses, or a timezone that is not an IANA name."""


def zone(timezone: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(f"Invalid timezone: {timezone!r}") from exc


def check_schedule(schedule: str, timezone: str | None = None) -> None:
    """Raise InvalidSchedule unless `schedule` and `timezone` are valid."""
    if not croniter.is_valid(schedule):
        raise InvalidSchedule(f"Invalid cron schedule: {schedule!r}")
    try:  # valid, yet never due (30 February): croniter gives up looking
        croniter(schedule, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise InvalidSchedule(f"Invalid cron schedule: {schedule!r} never fires") from None
    zone(timezone)


def next_fire(schedule: str, timezone: str | None, after: datetime) -> datetime:
    """The first instant strictly after `after` (aware) at which `schedule` fires in `timezone`, in UTC."""
    check_schedule(schedule, timezone)
    tz = zone(timezone)
    after = after.astimezone(UTC)
    every_hour = croniter(schedule).expanded[1] == ["*"]
    start = after.astimezone(tz).replace(tzinfo=None) - _LOOKBACK
    walls = croniter(schedule, start)
    best: datetime | None = None
    best_wall: datetime | None = None
    while True:
        wall: datetime = walls.get_next(datetime)
        if best_wall is not None and wall > best_wall + _LOOKAHEAD:
            assert best is not None
            return best
        for instant in _instants(wall, tz, every_hour):
            if instant > after and (best is None or instant < best):
                best, best_wall = instant, wall


def _instants(wall: datetime, tz: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The UTC instants a naive wall time stands for in `tz`: one; none that exists (a skipped
    time: the instant the clocks jump); or two (a repeated time: the second only for every_hour)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first < second:  # repeated: fold 0 is the earlier occurrence
        return [first, second] if every_hour else [first]
    # Skipped: fold 0 reads it with the offset before the jump, fold 1 with the one after; the
    # jump is the first instant whose wall time is past it.
    return [_jump(second, first, wall, tz)]


def _jump(low: datetime, high: datetime, wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant in (low, high] at which the clocks of `tz` jump over `wall` (to the minute, or
    the second for a transition off the minute)."""
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
