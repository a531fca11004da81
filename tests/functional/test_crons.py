"""Crons on the emulated EventBridge Scheduler, in-process: each cron is one `at()` schedule of the
stack's group whose target is the cron function, armed, disabled, ended and removed with the
cron; fires are driven by hand through the local scheduler (`LocalScheduler.fire_due` at the
schedule's own time, so nothing waits for the clock): a fire delivered twice creates one run, a
disabled or ended cron creates none, a stateless cron's thread goes after its run unless kept.
The real-time fire is test_sdk_cron_fires.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from botocore.exceptions import ClientError
from harness import until
from starlette.testclient import TestClient
from stepgraph_local.runtime import LocalRuntime, api_app

FAR = "0 9 1 1 *"  # 09:00 on 1 January: never due while the tests run, unless fired by hand


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[LocalRuntime, TestClient]]:
    runtime = LocalRuntime().start()
    try:
        with TestClient(api_app(runtime.ctx), base_url="http://stepgraph.test") as client:
            yield runtime, client
    finally:
        runtime.stop()


def schedule_of(runtime: LocalRuntime, cron_id: str) -> dict[str, Any]:
    got: dict[str, Any] = runtime.ctx.clients.scheduler.get_schedule(
        Name=f"cron-{cron_id}", GroupName=runtime.ctx.settings.schedule_group
    )
    return got


def fire(runtime: LocalRuntime, cron: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """Fire the cron's schedule as the Scheduler would at its time; what its target answered."""
    scheduler = runtime.aws.scheduler
    assert scheduler is not None
    before = len(scheduler.delivered)
    at = datetime.fromisoformat(cron["next_run_date"]) + timedelta(seconds=1)
    fired = scheduler.fire_due(now=at, names={f"cron-{cron['cron_id']}"})
    if not fired:
        return []
    until(lambda: len(scheduler.delivered) > before, 10, "the cron function to answer")
    return [d for d in list(scheduler.delivered)[before:] if d[1]["cron_id"] == cron["cron_id"]]


def ended(runtime: LocalRuntime, thread_id: str, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = runtime.ctx.runs.get(thread_id, run_id)
        return run if run is not None and run["status"] not in ("pending", "running") else None

    return until(done, 20, f"run {run_id} to end")


def test_each_cron_is_an_at_schedule_of_the_stacks_group_targeting_the_cron_function(stack):
    runtime, client = stack
    cron = client.post(
        "/runs/crons", json={"assistant_id": "chain", "schedule": "30 6 * * 1", "timezone": "Asia/Tokyo"}
    )
    assert cron.status_code == 200, cron.text
    cron_id, next_run = cron.json()["cron_id"], datetime.fromisoformat(cron.json()["next_run_date"])
    schedule = schedule_of(runtime, cron_id)
    assert schedule["GroupName"] == runtime.aws.resources["CronScheduleGroup"]
    assert schedule["ScheduleExpression"] == f"at({next_run.astimezone(UTC):%Y-%m-%dT%H:%M:%S})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC" and schedule["State"] == "ENABLED"
    assert schedule["Target"]["Arn"] == runtime.aws.resolve({"Fn::GetAtt": ["CronFunction", "Arn"]})
    assert schedule["Target"]["RoleArn"] == runtime.aws.resolve({"Fn::GetAtt": ["CronSchedulerRole", "Arn"]})
    assert json.loads(schedule["Target"]["Input"]) == {"cron_id": cron_id, "fire_at": next_run.isoformat()}

    assert client.patch(f"/runs/crons/{cron_id}", json={"enabled": False}).status_code == 200
    assert schedule_of(runtime, cron_id)["State"] == "DISABLED"
    assert client.patch(f"/runs/crons/{cron_id}", json={"enabled": True}).status_code == 200
    assert schedule_of(runtime, cron_id)["State"] == "ENABLED"
    # An end before the next fire ends it.
    past = (next_run - timedelta(minutes=1)).isoformat()
    assert client.patch(f"/runs/crons/{cron_id}", json={"end_time": past}).status_code == 200
    assert schedule_of(runtime, cron_id)["State"] == "DISABLED"

    assert client.delete(f"/runs/crons/{cron_id}").status_code == 204
    with pytest.raises(ClientError) as gone:
        schedule_of(runtime, cron_id)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_fire_delivered_twice_creates_one_run(stack):
    runtime, client = stack
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    body = {
        "assistant_id": "chain",
        "schedule": FAR,
        "input": {"items": ["cron"]},
        "metadata": {"via": "cron"},
        "webhook": "https://example.com/hook",
    }
    cron = client.post(f"/threads/{thread_id}/runs/crons", json=body).json()
    event = json.loads(schedule_of(runtime, cron["cron_id"])["Target"]["Input"])
    lam = runtime.aws.client("lambda")
    replies: list[dict[str, Any]] = []

    def deliver() -> None:  # at-least-once delivery: the same fire, four times at once
        out = lam.invoke(FunctionName="CronFunction", Payload=json.dumps(event).encode())
        replies.append(json.loads(out["Payload"].read()))

    deliveries = [threading.Thread(target=deliver) for _ in range(4)]
    for delivery in deliveries:
        delivery.start()
    for delivery in deliveries:
        delivery.join(30)
    runs = client.get(f"/threads/{thread_id}/runs").json()
    assert len(runs) == 1, runs
    assert sum("skipped" not in r for r in replies) == 1 and len(replies) == 4, replies
    run = ended(runtime, thread_id, runs[0]["run_id"])
    assert run["status"] == "success" and run["metadata"] == {
        "via": "cron",
        "cron_id": cron["cron_id"],
        "trace_id": ANY,
    }
    assert run["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    assert run["kwargs"]["webhook"] == "https://example.com/hook"  # delivered as a run's own webhook
    # The run's bill has the Scheduler's invocation that fired it (the three duplicates are on no run).
    billed = until(
        lambda: (r := runtime.ctx.runs.get(thread_id, run["run_id"])) and r.get("aws_usage") and r, 10, "usage"
    )
    assert billed["aws_usage"]["scheduler.invocations"] == 1
    assert billed["aws_usage"]["lambda.cron.invocations"] == 1
    # The next fire is armed once, a day later than this one's.
    armed = client.get(f"/runs/crons/{cron['cron_id']}").json()
    assert armed["next_run_date"] == next_year(cron["next_run_date"])
    assert schedule_of(runtime, cron["cron_id"])["ScheduleExpression"].startswith(f"at({armed['next_run_date'][:4]}")
    client.delete(f"/runs/crons/{cron['cron_id']}")


def next_year(iso: str) -> str:
    at = datetime.fromisoformat(iso)
    return at.replace(year=at.year + 1).isoformat()


def test_a_disabled_cron_does_not_fire(stack):
    runtime, client = stack
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    cron = client.post(f"/threads/{thread_id}/runs/crons", json={"assistant_id": "chain", "schedule": FAR}).json()
    event = json.loads(schedule_of(runtime, cron["cron_id"])["Target"]["Input"])
    client.patch(f"/runs/crons/{cron['cron_id']}", json={"enabled": False})
    assert fire(runtime, cron) == []  # the schedule is DISABLED: its time passes, nothing is invoked
    # A delivery already under way when it was disabled makes no run either.
    late = runtime.aws.client("lambda").invoke(FunctionName="CronFunction", Payload=json.dumps(event).encode())
    assert json.loads(late["Payload"].read()) == {"skipped": "disabled"}
    assert client.get(f"/threads/{thread_id}/runs").json() == []
    client.delete(f"/runs/crons/{cron['cron_id']}")


def test_a_fire_after_end_time_makes_no_run(stack):
    runtime, client = stack
    soon = datetime.now(UTC) + timedelta(hours=1)
    body = {"assistant_id": "chain", "schedule": "0 * * * *", "end_time": soon.isoformat()}
    cron = client.post("/runs/crons", json=body).json()
    late = {"cron_id": cron["cron_id"], "fire_at": (soon + timedelta(hours=1)).isoformat()}
    out = runtime.aws.client("lambda").invoke(FunctionName="CronFunction", Payload=json.dumps(late).encode())
    assert json.loads(out["Payload"].read()) == {"skipped": "ended"}
    client.delete(f"/runs/crons/{cron['cron_id']}")


def test_a_stateless_crons_thread_goes_after_its_run_unless_kept(stack):
    runtime, client = stack
    crons = {
        policy: client.post(
            "/runs/crons",
            json={"assistant_id": "chain", "schedule": FAR, "input": {"items": [policy]}, "on_run_completed": policy},
        ).json()
        for policy in ("delete", "keep")
    }
    fired = {policy: fire(runtime, cron) for policy, cron in crons.items()}
    for delivered in fired.values():
        assert len(delivered) == 1 and "run_id" in delivered[0][2], delivered
    kept = fired["keep"][0][2]
    assert ended(runtime, kept["thread_id"], kept["run_id"])["status"] == "success"
    state = client.get(f"/threads/{kept['thread_id']}/state").json()
    assert state["values"] == {"items": ["keep", "a", "b", "c"]}
    deleted = fired["delete"][0][2]
    until(lambda: runtime.ctx.threads.get(deleted["thread_id"]) is None, 20, "the cron's thread to be deleted")
    assert client.get(f"/threads/{deleted['thread_id']}").status_code == 404
    for cron in crons.values():
        client.delete(f"/runs/crons/{cron['cron_id']}")


@pytest.mark.parametrize(("strategy", "runs"), [("reject", 1), ("enqueue", 2)])
def test_a_thread_crons_fire_follows_its_double_texting_strategy(stack, strategy, runs):
    runtime, client = stack
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    body = {"assistant_id": "chain", "input": {"items": []}, "after_seconds": 600}
    queued = client.post(f"/threads/{thread_id}/runs", json=body)  # the thread has a run in flight
    assert queued.status_code == 200, queued.text
    body = {"assistant_id": "chain", "schedule": FAR, "multitask_strategy": strategy}
    cron = client.post(f"/threads/{thread_id}/runs/crons", json=body).json()
    (delivered,) = fire(runtime, cron)
    assert ("skipped" in delivered[2]) == (strategy == "reject"), delivered
    assert len(client.get(f"/threads/{thread_id}/runs").json()) == runs
    client.delete(f"/runs/crons/{cron['cron_id']}")
    client.post(f"/threads/{thread_id}/runs/{queued.json()['run_id']}/cancel")


def test_deleting_a_thread_deletes_its_crons_and_their_schedules(stack):
    runtime, client = stack
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    cron = client.post(f"/threads/{thread_id}/runs/crons", json={"assistant_id": "chain", "schedule": FAR}).json()
    assert client.delete(f"/threads/{thread_id}").status_code == 204
    assert client.get(f"/runs/crons/{cron['cron_id']}").status_code == 404
    with pytest.raises(ClientError):
        schedule_of(runtime, cron["cron_id"])


def test_a_fire_whose_try_failed_makes_its_run_on_the_redelivery(stack, monkeypatch):
    runtime, client = stack
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    cron = client.post(f"/threads/{thread_id}/runs/crons", json={"assistant_id": "chain", "schedule": FAR}).json()
    event = json.dumps(json.loads(schedule_of(runtime, cron["cron_id"])["Target"]["Input"])).encode()
    lam = runtime.aws.client("lambda")
    with monkeypatch.context() as patch:  # the assistants table throttles this one try
        patch.setattr(type(runtime.ctx.assistants), "get", _throttled)
        failed = lam.invoke(FunctionName="CronFunction", Payload=event)
    assert failed.get("FunctionError"), json.loads(failed["Payload"].read())
    assert client.get(f"/threads/{thread_id}/runs").json() == []
    again = json.loads(lam.invoke(FunctionName="CronFunction", Payload=event)["Payload"].read())
    assert "run_id" in again, again  # the redelivery is not taken for a duplicate
    assert [r["run_id"] for r in client.get(f"/threads/{thread_id}/runs").json()] == [again["run_id"]]
    client.delete(f"/runs/crons/{cron['cron_id']}")


def _throttled(self: Any, assistant_id: str) -> None:
    raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem")
