"""Double-texting, background runs and retries, driven through langgraph-sdk: one test per
multitask strategy with the peer's observed outcomes, and 50 concurrent creates on one busy
thread per strategy, which must end exactly as the strategy defines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from harness import Server
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")

GRAPHS = Path(__file__).resolve().parents[1] / "graphs" / "langgraph.json"
RACE = 50


@pytest.fixture(scope="module")
def graphs_server(flavor: str) -> Iterator[Server]:
    srv = Server(config=GRAPHS, flavor=flavor).wait_ready()
    yield srv
    srv.stop()


async def _until(predicate, timeout: float = 20, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError("condition not reached in time")


async def _napping(client, thread_id: str, tag: str) -> None:
    """The run that got `tag` as input is inside its nap: its input checkpoint is written."""

    async def check():
        state = await client.threads.get_state(thread_id)
        return tag in (state["values"] or {}).get("items", []) and state["next"] == ["nap"]

    await _until(check)


async def _busy(client, thread_id: str, tag: str, pause: float):
    run = await client.runs.create(thread_id, "nap", input={"items": [tag], "pause": pause})
    await _napping(client, thread_id, tag)
    return run


async def _all_settled(client, thread_id: str) -> list[dict]:
    async def check():
        runs = await client.runs.list(thread_id, limit=1000)
        return runs if all(r["status"] not in ("pending", "running") for r in runs) else None

    return await _until(check, timeout=60)


async def _status(http: httpx.AsyncClient, thread_id: str, run_id: str) -> str | int:
    resp = await http.get(f"/threads/{thread_id}/runs/{run_id}")
    return resp.status_code if resp.status_code != 200 else resp.json()["status"]


# ---------------------------------------------------------------- one double-text per strategy
async def test_reject_answers_409_and_inserts_nothing(graphs_server):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    first = await _busy(client, thread, "r1", 1.0)
    with pytest.raises(httpx.HTTPStatusError) as err:
        await client.runs.create(thread, "nap", input={"items": ["r2"], "pause": 0}, multitask_strategy="reject")
    assert err.value.response.status_code == 409
    assert err.value.response.json() == {
        "detail": "Thread is already running a task. Wait for it to finish or choose a different multitask strategy."
    }
    assert [r["run_id"] for r in await client.runs.list(thread)] == [first["run_id"]]
    await client.runs.join(thread, first["run_id"])
    # Free again: reject accepts.
    result = await client.runs.wait(thread, "nap", input={"items": ["r3"], "pause": 0}, multitask_strategy="reject")
    assert result["items"] == ["r1", "slept", "r3", "slept"]


async def test_enqueue_runs_after_the_first_ends(graphs_server):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    first = await _busy(client, thread, "r1", 0.5)
    second = await client.runs.create(thread, "nap", input={"items": ["r2"], "pause": 0})  # enqueue is the default
    assert second["status"] == "pending" and second["multitask_strategy"] == "enqueue"
    assert (await client.runs.get(thread, second["run_id"]))["status"] == "pending"
    assert (await client.runs.get(thread, first["run_id"]))["status"] == "running"
    pending = await client.runs.list(thread, status="pending")
    assert [r["run_id"] for r in pending] == [second["run_id"]]
    assert (await client.runs.join(thread, second["run_id"]))["items"] == ["r1", "slept", "r2", "slept"]
    assert (await client.runs.get(thread, first["run_id"]))["status"] == "success"
    assert [r["run_id"] for r in await client.runs.list(thread, status="success")] == [
        second["run_id"],
        first["run_id"],
    ]


async def test_interrupt_keeps_the_first_runs_checkpoints(graphs_server):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    first = await _busy(client, thread, "r1", 5.0)
    second = await client.runs.create(
        thread, "nap", input={"items": ["r2"], "pause": 0}, multitask_strategy="interrupt"
    )
    assert (await client.runs.get(thread, first["run_id"]))["status"] == "interrupted"
    result = await client.runs.join(thread, second["run_id"])
    assert result["items"] == ["r1", "r2", "slept"]  # the peer's observation, exactly
    assert (await client.runs.get(thread, second["run_id"]))["status"] == "success"
    assert (await client.threads.get(thread))["status"] == "idle"


async def test_rollback_deletes_the_first_run_and_its_checkpoints(graphs_server):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    first = await _busy(client, thread, "r1", 5.0)
    second = await client.runs.create(thread, "nap", input={"items": ["r2"], "pause": 0}, multitask_strategy="rollback")
    with pytest.raises(httpx.HTTPStatusError) as err:
        await client.runs.get(thread, first["run_id"])
    assert err.value.response.status_code == 404
    assert (await client.runs.join(thread, second["run_id"]))["items"] == ["r2", "slept"]
    history = await client.threads.get_history(thread, limit=100)
    assert {h["metadata"]["run_id"] for h in history} == {second["run_id"]}


# ---------------------------------------------------------------- cancel
async def test_cancel_with_wait_and_both_actions(graphs_server):
    client = get_client(url=graphs_server.url)
    async with httpx.AsyncClient(base_url=graphs_server.url, timeout=30) as http:
        thread = (await client.threads.create())["thread_id"]
        first = await _busy(client, thread, "r1", 5.0)
        resp = await http.post(f"/threads/{thread}/runs/{first['run_id']}/cancel?wait=true&action=interrupt")
        assert resp.status_code == 200
        assert resp.json()["items"] == ["r1"]  # the join body: the state it was stopped in
        assert await _status(http, thread, first["run_id"]) == "interrupted"
        assert (await client.threads.get(thread))["status"] == "interrupted"  # mid-node, as the peer

        second = await _busy(client, thread, "r2", 5.0)
        await client.runs.cancel(thread, second["run_id"], wait=True, action="rollback")
        assert await _status(http, thread, second["run_id"]) == 404
        state = await client.threads.get_state(thread)
        assert state["values"]["items"] == ["r1"]  # r2's input checkpoint is gone, r1's kept

        # A pending run can be cancelled too: it never starts.
        third = await _busy(client, thread, "r3", 1.0)
        queued = await client.runs.create(thread, "nap", input={"items": ["never"], "pause": 0})
        await client.runs.cancel(thread, queued["run_id"])
        assert await _status(http, thread, queued["run_id"]) == "interrupted"
        await client.runs.join(thread, third["run_id"])
        assert "never" not in (await client.threads.get_state(thread))["values"]["items"]


async def test_a_cancelled_node_stays_pending_and_a_run_without_input_continues_it(graphs_server):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    first = await _busy(client, thread, "cut", 2.0)
    await client.runs.cancel(thread, first["run_id"], wait=True)
    assert (await client.threads.get(thread))["status"] == "interrupted"
    # The node that was cut off is the thread's next task, as on the peer.
    state = await client.threads.get_state(thread)
    assert state["next"] == ["nap"]
    assert [t["name"] for t in state["tasks"]] == ["nap"]
    # A run with no input picks it up from that checkpoint: the node runs once, to the end.
    assert await client.runs.wait(thread, "nap", input=None) == {"items": ["cut", "slept"], "pause": 2.0}
    assert (await client.threads.get(thread))["status"] == "idle"


# ---------------------------------------------------------------- background runs
async def test_after_seconds_delays_the_start(graphs_server):
    # Margins of seconds, not tenths: CI runs two test workers on two cores.
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    started = time.time()
    run = await client.runs.create(thread, "nap", input={"items": ["later"], "pause": 0}, after_seconds=5)
    assert run["status"] == "pending"
    # The peer: created_at = now + after_seconds.
    assert 4.5 < datetime.fromisoformat(run["created_at"]).timestamp() - started < 6.0
    await asyncio.sleep(1.0)
    assert (await client.runs.get(thread, run["run_id"]))["status"] == "pending"
    # A run created meanwhile is due first: it goes ahead of the delayed one.
    now = await client.runs.wait(thread, "nap", input={"items": ["now"], "pause": 0})
    assert now["items"] == ["now", "slept"]
    assert (await client.runs.join(thread, run["run_id"]))["items"] == ["now", "slept", "later", "slept"]
    elapsed = time.time() - started
    assert 5.0 <= elapsed < 9.0


async def test_durability_modes(graphs_server):
    client = get_client(url=graphs_server.url)
    counts = {}
    for durability in ("sync", "async", "exit"):
        thread = (await client.threads.create())["thread_id"]
        result = await client.runs.wait(thread, "nap", input={"items": ["x"], "pause": 0}, durability=durability)
        assert result["items"] == ["x", "slept"]
        counts[durability] = len(await client.threads.get_history(thread, limit=100))
    # As on the peer: "exit" writes one checkpoint, the others one per superstep.
    assert counts == {"sync": 3, "async": 3, "exit": 1}


async def test_node_retry_policy_works_inside_a_step(graphs_server):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    result = await client.runs.wait(thread, "flaky", input={"items": []})
    assert result["items"] == ["ok after 3 attempts"]
    [run] = await client.runs.list(thread)
    assert run["status"] == "success"


# ---------------------------------------------------------------- 50 concurrent creates
async def _race(client, thread: str, strategy: str, pause: float) -> tuple[list[dict], list[int]]:
    async def create(i: int):
        try:
            return await client.runs.create(
                thread, "nap", input={"items": [f"t{i}"], "pause": pause}, multitask_strategy=strategy
            )
        except httpx.HTTPStatusError as exc:
            return exc.response.status_code

    outcomes = await asyncio.gather(*(create(i) for i in range(RACE)))
    return [o for o in outcomes if isinstance(o, dict)], [o for o in outcomes if not isinstance(o, dict)]


def _tag(run: dict) -> str:
    return run["kwargs"]["input"]["items"][0]


# Admission alone (the queue's conditional writes) decides these two races, whatever the nodes are
# like: one flavor suffices. Interrupt and rollback cancel running nodes, so they run on both.
ADMISSION_ONLY = pytest.mark.parametrize("flavor", ["async"], scope="session")


@ADMISSION_ONLY
async def test_race_reject(graphs_server, record_counts):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    # An idle thread; the one accepted run stays busy (3 s) well past the last of the 50 creates.
    accepted, refused = await _race(client, thread, "reject", 3.0)
    assert len(accepted) == 1 and refused == [409] * (RACE - 1)
    accepted_busy, refused_busy = await _race(client, thread, "reject", 0)  # now busy
    assert accepted_busy == [] and refused_busy == [409] * RACE
    await client.runs.join(thread, accepted[0]["run_id"])
    assert [r["run_id"] for r in await client.runs.list(thread, limit=100)] == [accepted[0]["run_id"]]
    record_counts(
        "reject race", {"accepted": len(accepted), "got_409": len(refused), "busy_thread_got_409": len(refused_busy)}
    )


@ADMISSION_ONLY
async def test_race_enqueue(graphs_server, record_counts):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    await _busy(client, thread, "busy", 1.0)
    accepted, refused = await _race(client, thread, "enqueue", 0)
    assert len(accepted) == RACE and refused == []
    runs = await _all_settled(client, thread)
    assert [r["status"] for r in runs] == ["success"] * (RACE + 1)
    # One at a time, in creation order: each run's input then its nap, never interleaved.
    in_order = sorted(accepted, key=lambda r: r["run_id"])
    assert [r["created_at"] for r in in_order] == sorted(r["created_at"] for r in in_order)
    expected = ["busy", "slept"] + [x for r in in_order for x in (_tag(r), "slept")]
    assert (await client.threads.get_state(thread))["values"]["items"] == expected
    record_counts(
        "enqueue race", {"accepted": len(accepted), "ran_in_order": sum(r["status"] == "success" for r in runs) - 1}
    )


async def test_race_interrupt(graphs_server, record_counts):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    busy = await _busy(client, thread, "busy", 10.0)
    accepted, refused = await _race(client, thread, "interrupt", 3.0)
    assert len(accepted) == RACE and refused == []
    runs = {r["run_id"]: r for r in await _all_settled(client, thread)}
    newest = max(accepted, key=lambda r: r["run_id"])
    assert runs[busy["run_id"]]["status"] == "interrupted"
    assert runs[newest["run_id"]]["status"] == "success"
    others = [r for r in accepted if r["run_id"] != newest["run_id"]]
    assert [runs[r["run_id"]]["status"] for r in others] == ["interrupted"] * (RACE - 1)
    items = (await client.threads.get_state(thread))["values"]["items"]
    # Interrupted runs keep what they checkpointed (at most their input); only the newest naps.
    assert items[0] == "busy" and items[-2:] == [_tag(newest), "slept"] and items.count("slept") == 1
    record_counts("interrupt race", {"accepted": len(accepted), "succeeded": 1, "interrupted": len(others) + 1})


async def test_race_rollback(graphs_server, record_counts):
    client = get_client(url=graphs_server.url)
    thread = (await client.threads.create())["thread_id"]
    seed = await client.runs.wait(thread, "nap", input={"items": ["seed"], "pause": 0})
    assert seed["items"] == ["seed", "slept"]
    busy = await _busy(client, thread, "busy", 10.0)
    accepted, refused = await _race(client, thread, "rollback", 3.0)
    assert len(accepted) == RACE and refused == []
    runs = await _all_settled(client, thread)
    newest = max(accepted, key=lambda r: r["run_id"])
    # Everything rolled back is gone: the busy run and 49 of the 50.
    survivors = {r["run_id"]: r["status"] for r in runs}
    assert survivors.pop(newest["run_id"]) == "success"
    assert list(survivors.values()) == ["success"]  # the seed run, untouched
    async with httpx.AsyncClient(base_url=graphs_server.url) as http:
        gone = [await _status(http, thread, r["run_id"]) for r in [busy, *accepted] if r is not newest]
    assert gone == [404] * RACE
    state = await client.threads.get_state(thread)
    assert state["values"]["items"] == ["seed", "slept", _tag(newest), "slept"]
    history = await client.threads.get_history(thread, limit=100)
    assert {h["metadata"]["run_id"] for h in history} == {newest["run_id"], *survivors}
    record_counts("rollback race", {"accepted": len(accepted), "succeeded": 1, "rolled_back_404": len(gone)})
