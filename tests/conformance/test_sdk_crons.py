"""Crons through langgraph-sdk: every method of `client.crons` with the peer's fields, and the
peer's refusals (422 for a bad schedule or timezone, 400 for an empty update, 404 for a cron that
is not there). When crons fire: test_sdk_cron_fires.py (real time) and
functional/test_crons.py (fires driven by hand)."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from langgraph_sdk import get_client
from stepgraph.engine import next_fire

pytestmark = pytest.mark.asyncio(loop_scope="function")

CHAIN_ID = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "chain"))
TESTED = {"create", "create_for_thread", "search", "count", "update", "delete"}


@pytest.fixture
def url(request: pytest.FixtureRequest, flavor: str) -> str:
    if flavor != "sync":
        pytest.skip("crons do not depend on how the graph's nodes are written: served once")
    return str(request.getfixturevalue("server").url)


async def status_of(call) -> tuple[int, dict]:
    try:
        await call
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code, exc.response.json()
    return 200, {}


async def test_every_crons_method_of_the_sdk_is_tested_here():
    client = get_client(url="http://127.0.0.1:1")
    methods = {n for n, _ in inspect.getmembers(type(client.crons), inspect.isfunction) if not n.startswith("_")}
    assert methods == TESTED, f"new or gone SDK crons methods: {methods ^ TESTED}"


async def test_create_for_thread_stores_the_peers_fields(url):
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    end = datetime(2031, 1, 1, tzinfo=UTC)
    cron = await client.crons.create_for_thread(
        thread_id,
        "chain",
        schedule="0 9 * * 1-5",
        timezone="Europe/Paris",
        input={"items": ["x"]},
        metadata={"team": "ops"},
        config={"tags": ["cron"]},
        webhook="https://example.com/hook",
        interrupt_before=["b"],
        multitask_strategy="interrupt",
        end_time=end,
        stream_mode=["values", "updates"],
        durability="sync",
    )
    uuid.UUID(cron["cron_id"])
    assert cron["thread_id"] == thread_id and cron["assistant_id"] == CHAIN_ID
    assert cron["schedule"] == "0 9 * * 1-5" and cron["timezone"] == "Europe/Paris"
    assert cron["enabled"] is True and cron["on_run_completed"] is None and cron["user_id"] is None
    assert cron["metadata"] == {"team": "ops"}
    assert datetime.fromisoformat(cron["end_time"]) == end
    assert cron["payload"] == {
        "assistant_id": CHAIN_ID,
        "input": {"items": ["x"]},
        "config": {"tags": ["cron"]},
        "webhook": "https://example.com/hook",  # each fire's run carries it (webhooks deliver it)
        "interrupt_before": ["b"],
        "multitask_strategy": "interrupt",
        "stream_mode": ["values", "updates"],
        "durability": "sync",
    }
    # 09:00 on the next weekday in Paris, stored in UTC.
    expected = next_fire("0 9 * * 1-5", "Europe/Paris", datetime.fromisoformat(cron["created_at"]))
    assert datetime.fromisoformat(cron["next_run_date"]) == expected
    assert expected.astimezone(ZoneInfo("Europe/Paris")).hour == 9
    assert {"created_at", "updated_at"} <= set(cron)


async def test_create_stateless_defaults_to_deleting_its_threads(url):
    client = get_client(url=url)
    cron = await client.crons.create("chain", schedule="*/10 * * * *", input={"items": []})
    assert cron["thread_id"] is None and cron["on_run_completed"] == "delete" and cron["timezone"] is None
    kept = await client.crons.create("chain", schedule="*/10 * * * *", on_run_completed="keep", enabled=False)
    assert kept["on_run_completed"] == "keep" and kept["enabled"] is False
    expected = next_fire("*/10 * * * *", None, datetime.fromisoformat(cron["created_at"]))
    assert datetime.fromisoformat(cron["next_run_date"]) == expected
    for made in (cron, kept):
        await client.crons.delete(made["cron_id"])


async def test_search_and_count_by_thread_assistant_metadata_and_enabled(url):
    client = get_client(url=url)
    tag = str(uuid.uuid4())
    thread_id = (await client.threads.create())["thread_id"]
    on_thread = await client.crons.create_for_thread(thread_id, "chain", schedule="0 * * * *", metadata={"tag": tag})
    other = await client.crons.create("loop", schedule="0 0 * * *", metadata={"tag": tag}, enabled=False)
    third = await client.crons.create("chain", schedule="0 12 * * *", metadata={"tag": tag, "n": 3})

    assert [c["cron_id"] for c in await client.crons.search(thread_id=thread_id)] == [on_thread["cron_id"]]
    assert await client.crons.count(thread_id=thread_id) == 1
    by_graph = await client.crons.search(assistant_id="chain", metadata={"tag": tag})  # a graph id names its assistant
    assert {c["cron_id"] for c in by_graph} == {on_thread["cron_id"], third["cron_id"]}
    assert await client.crons.count(assistant_id=CHAIN_ID, metadata={"tag": tag}) == 2
    assert await client.crons.count(metadata={"tag": tag}) == 3
    assert [c["cron_id"] for c in await client.crons.search(metadata={"tag": tag}, enabled=False)] == [other["cron_id"]]
    ordered = await client.crons.search(metadata={"tag": tag}, sort_by="created_at", sort_order="asc")
    assert [c["cron_id"] for c in ordered] == [on_thread["cron_id"], other["cron_id"], third["cron_id"]]
    page = await client.crons.search(metadata={"tag": tag}, sort_by="created_at", sort_order="asc", limit=1, offset=1)
    assert [c["cron_id"] for c in page] == [other["cron_id"]]
    selected = await client.crons.search(metadata={"tag": tag, "n": 3}, select=["cron_id", "schedule"])
    assert selected == [{"cron_id": third["cron_id"], "schedule": "0 12 * * *"}]
    for made in (on_thread, other, third):
        await client.crons.delete(made["cron_id"])
    assert await client.crons.count(metadata={"tag": tag}) == 0


async def test_update_changes_the_schedule_enabled_end_time_and_payload(url):
    client = get_client(url=url)
    cron = await client.crons.create(
        "chain", schedule="0 9 * * *", end_time=datetime(2030, 1, 1, tzinfo=UTC), input={"items": ["a"]}
    )
    cron_id = cron["cron_id"]
    moved = await client.crons.update(cron_id, schedule="30 6 * * *", timezone="America/New_York")
    assert moved["schedule"] == "30 6 * * *" and moved["timezone"] == "America/New_York"
    expected = next_fire("30 6 * * *", "America/New_York", datetime.fromisoformat(moved["updated_at"]))
    assert datetime.fromisoformat(moved["next_run_date"]) == expected
    assert moved["payload"]["input"] == {"items": ["a"]}  # left as it was
    paused = await client.crons.update(cron_id, enabled=False, input={"items": ["b"]}, on_run_completed="keep")
    assert paused["enabled"] is False and paused["on_run_completed"] == "keep"
    assert paused["payload"]["input"] == {"items": ["b"]}
    assert paused["end_time"] is not None
    cleared = await client.crons.update(cron_id, end_time=None)  # an explicit null clears it
    assert cleared["end_time"] is None and cleared["enabled"] is False
    assert [
        c["enabled"] for c in await client.crons.search(metadata={}, assistant_id="chain") if c["cron_id"] == cron_id
    ] == [False]
    await client.crons.delete(cron_id)


async def test_delete_removes_the_cron(url):
    client = get_client(url=url)
    cron = await client.crons.create("chain", schedule="0 9 * * *")
    await client.crons.delete(cron["cron_id"])
    assert cron["cron_id"] not in {c["cron_id"] for c in await client.crons.search(limit=1000)}
    assert (await status_of(client.crons.delete(cron["cron_id"])))[0] == 404
    assert (await status_of(client.crons.update(cron["cron_id"], enabled=True)))[0] == 404


async def test_bad_schedules_timezones_and_updates_are_refused(url):
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    for call in (
        client.crons.create("chain", schedule="61 * * * *"),
        client.crons.create("chain", schedule="every tuesday-ish"),
        client.crons.create("chain", schedule="* * * * *", timezone="Mars/Olympus_Mons"),
        client.crons.create_for_thread(thread_id, "chain", schedule="not a cron"),
    ):
        status, body = await status_of(call)
        assert status == 422 and isinstance(body["detail"], str) and body["detail"], body
    assert (await status_of(client.crons.create("no-such-graph", schedule="* * * * *")))[0] == 422
    assert (await status_of(client.crons.create_for_thread(str(uuid.uuid4()), "chain", schedule="* * * * *")))[0] == 404
    assert await client.crons.count(thread_id=thread_id) == 0  # nothing was created
    cron = await client.crons.create("chain", schedule="0 9 * * *")
    async with httpx.AsyncClient(base_url=url) as http:
        empty = await http.patch(f"/runs/crons/{cron['cron_id']}", json={})
        assert empty.status_code == 400 and "detail" in empty.json()
        bad = await http.patch(f"/runs/crons/{cron['cron_id']}", json={"timezone": "Nowhere/Else"})
        assert bad.status_code == 422, bad.text
        assert (await http.get(f"/runs/crons/{cron['cron_id']}")).json()["timezone"] is None  # unchanged
    await client.crons.delete(cron["cron_id"])
