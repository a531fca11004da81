"""When a cron fires (`next_run_date`): wall-clock times of an IANA timezone, exact across the
2026 daylight-saving changes of New York (8 March, 1 November) and Paris (29 March, 25 October).
A skipped wall time fires at the jump; a repeated one fires once, unless the schedule runs every
hour (then each of the two hours fires)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from stepgraph.engine import InvalidSchedule, check_schedule, next_fire

NY, PARIS = "America/New_York", "Europe/Paris"


def fires(schedule: str, timezone: str, after: str, count: int) -> list[str]:
    """The next `count` fires after the UTC instant `after`, as wall times with their offset."""
    at, out = datetime.fromisoformat(after).replace(tzinfo=UTC), []
    for _ in range(count):
        at = next_fire(schedule, timezone, at)
        assert at.tzinfo is not None and at.utcoffset() == UTC.utcoffset(None)  # stored in UTC
        out.append(at.astimezone(ZoneInfo(timezone)).isoformat())
    return out


@pytest.mark.parametrize(
    ("timezone", "day_before", "jumped", "after"),
    [
        (NY, "2026-03-07T12:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"),
        (PARIS, "2026-03-28T12:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"),
    ],
)
def test_a_daily_time_the_clocks_skip_fires_once_at_the_jump(timezone, day_before, jumped, after):
    before = {NY: "2026-03-07T02:30:00-05:00", PARIS: "2026-03-28T02:30:00+01:00"}[timezone]
    assert fires("30 2 * * *", timezone, day_before.replace("12:00", "00:00"), 3) == [before, jumped, after]


def test_a_frequent_schedule_through_the_spring_gap_neither_doubles_nor_stops():
    # New York, 8 March: 02:00-02:59 does not exist; the 02:xx fires fold into the jump at 03:00.
    assert fires("*/30 * * * *", NY, "2026-03-08T06:20", 4) == [
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:30:00-04:00",
        "2026-03-08T04:00:00-04:00",
    ]
    # Paris, 29 March: 02:00-02:59 does not exist.
    assert fires("0 * * * *", PARIS, "2026-03-28T23:30", 3) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


@pytest.mark.parametrize(
    ("timezone", "schedule", "after", "expected"),
    [
        # New York, 1 November: 01:00-01:59 happens twice (EDT, then EST).
        (NY, "30 1 * * *", "2026-10-31T12:00", ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
        # Paris, 25 October: 02:00-02:59 happens twice (CEST, then CET).
        (PARIS, "30 2 * * *", "2026-10-24T12:00", ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ],
)
def test_a_daily_time_the_clocks_repeat_fires_once(timezone, schedule, after, expected):
    assert fires(schedule, timezone, after, 2) == expected


@pytest.mark.parametrize(
    ("timezone", "after", "expected"),
    [
        (
            NY,
            "2026-11-01T04:50",
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:00:00-05:00",
            ],
        ),
        (
            PARIS,
            "2026-10-24T23:50",
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-25T03:00:00+01:00",
            ],
        ),
    ],
)
def test_an_hourly_schedule_fires_in_both_repeated_hours(timezone, after, expected):
    assert fires("*/30 * * * *", timezone, after, 5) == expected


def test_a_fire_computed_from_inside_the_repeated_hour_looks_back_across_it():
    # From 01:50 EDT, the next hourly fire is 01:00 EST (ten minutes later), not 02:00 EST.
    assert fires("0 * * * *", NY, "2026-11-01T05:50", 2) == ["2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"]


def test_day_of_month_and_day_of_week_both_set_fire_on_either_as_cron_does():
    # EventBridge's cron() cannot say this (one of the two must be `?`); croniter's OR of the two can.
    assert fires("0 9 1 * 1", "UTC", "2026-01-01T00:00", 3) == [
        "2026-01-01T09:00:00+00:00",  # the 1st (a Thursday)
        "2026-01-05T09:00:00+00:00",  # a Monday
        "2026-01-12T09:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("schedule", "timezone"),
    [("61 * * * *", None), ("every day", None), ("0 0 30 2 *", None), ("* * * * *", "Mars/Base")],
)
def test_what_croniter_or_the_iana_database_refuses_is_refused(schedule, timezone):
    with pytest.raises(InvalidSchedule):
        check_schedule(schedule, timezone)
