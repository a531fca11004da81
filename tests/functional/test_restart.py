"""`stepgraph dev` killed with SIGKILL mid-run and started again on the same data folder: the
threads are there, the cut run goes on from its last committed checkpoint (its stream too) and
ends `success`, and a parked run is still resumable.

The `counted` graph (restart_project/graphs.py) writes each superstep it executes, with the pid
of the server that ran it, to a side file: the test reports how many supersteps ran twice. Only
the one in flight at the kill may (its checkpoint was never acknowledged); none before it.
"""

from __future__ import annotations

import collections
import signal
from pathlib import Path

import httpx
import pytest
from harness import Server, until
from langgraph_sdk import get_sync_client
from reporting import report_line

pytestmark = pytest.mark.timeout(90)

PROJECT = Path(__file__).parent / "restart_project" / "langgraph.json"
STEPS = 50


def _executions(path: Path) -> list[tuple[int, int]]:
    """(pid, superstep) of every superstep execution so far."""
    if not path.exists():
        return []
    return [(int(pid), int(step)) for pid, step in (line.split() for line in path.read_text().splitlines() if line)]


def test_a_sigkilled_dev_server_restarts_with_its_state_and_resumes_its_runs(tmp_path, request):
    steps_file = tmp_path / "steps"
    env = {"RESTART_TEST_STEPS_FILE": str(steps_file), "RESTART_TEST_STEP_DELAY": "0.03"}
    # Strict mode commits each superstep before the next starts, so "committed" is exact: only
    # the superstep in flight at the kill may run again. (Batched mode lets a checkpoint linger
    # `commit_linger_ms` while the next superstep runs, as the peer's "async" durability.)
    data = ["--data-dir", str(tmp_path / "data"), "--step-mode", "strict"]

    first = Server(*data, config=PROJECT, env=env).wait_ready()
    try:
        client = get_sync_client(url=first.url)
        # A parked run: stopped on its interrupt before the kill.
        parked = client.threads.create()["thread_id"]
        client.runs.wait(parked, "approval", input={"question": "ship it?"})
        assert client.threads.get(parked)["status"] == "interrupted"
        # The long run, cut mid-way.
        thread_id = client.threads.create()["thread_id"]
        run_id = client.runs.create(thread_id, "counted", input={"steps": STEPS}, stream_resumable=True)["run_id"]
        # A run queued behind it, still pending at the kill.
        queued = client.runs.create(thread_id, "counted", input={"steps": STEPS + 2}, multitask_strategy="enqueue")
        seen = []
        for part in client.runs.join_stream(thread_id, run_id):
            if part.event == "values":
                seen.append(part)
            if len(seen) == 5:
                break  # the client goes away; the run goes on
        until(lambda: len(_executions(steps_file)) >= 10, 30, "10 supersteps before the kill")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        if first.proc.poll() is None:
            first.stop()
    before = _executions(steps_file)
    in_flight = max(step for _, step in before)  # the superstep the kill may have cut
    assert in_flight < STEPS, "the run ended before the kill: nothing to resume"

    second = Server(*data, config=PROJECT, env=env).wait_ready()
    try:
        client = get_sync_client(url=second.url)
        # The banner says what is served, how, where the data lives and where to point a client.
        banner = second.read_output()
        assert "serving counted, approval" in banner and "step mode: strict" in banner, banner
        assert f"data: {tmp_path / 'data'}" in banner and f"API: {second.url}" in banner, banner
        assert f"docs: {second.url}/docs" in banner and httpx.get(f"{second.url}/docs").status_code == 200
        assert f"Studio UI: https://smith.langchain.com/studio/?baseUrl={second.url}" in banner, banner
        # The thread and its history are there.
        assert client.threads.get(thread_id)["thread_id"] == thread_id
        history = client.threads.get_history(thread_id, limit=STEPS + 10)
        assert {c["values"].get("count") for c in history} >= set(range(1, 5))
        # The stream goes on from the last event the client saw, on the same log.
        rest = [p for p in client.runs.join_stream(thread_id, run_id, last_event_id=seen[-1].id) if p.event == "values"]
        counts = [part.data.get("count", 0) for part in seen + rest]
        assert counts == sorted(counts) and counts[-1] == STEPS, counts
        assert [int(p.id) for p in seen + rest] == sorted({int(p.id) for p in seen + rest})  # no event twice
        assert client.runs.get(thread_id, run_id)["status"] == "success"
        # The queued run runs after it, from its final state.
        assert client.runs.join(thread_id, queued["run_id"]) == {"count": STEPS + 2, "steps": STEPS + 2}
        assert client.runs.get(thread_id, queued["run_id"])["status"] == "success"
        # Every superstep ran; only the one cut by the kill may have run twice.
        executed = collections.Counter(step for _, step in _executions(steps_file))
        assert set(executed) == set(range(1, STEPS + 3))
        twice = sorted(step for step, n in executed.items() if n > 1)
        report_line(
            request,
            "dev server restart (SIGKILL mid-run)",
            f"killed after superstep {in_flight} of {STEPS} started; supersteps executed twice: {len(twice)} "
            f"{twice} (past a committed checkpoint: {len([s for s in twice if s != in_flight])})",
        )
        assert set(twice) <= {in_flight} and max(executed.values()) <= 2, executed
        # The parked run is still resumable.
        assert client.threads.get(parked)["status"] == "interrupted"
        resumed = client.runs.wait(parked, "approval", command={"resume": "yes"})
        assert resumed == {"question": "ship it?", "answer": "yes"}
        assert client.threads.get(parked)["status"] == "idle"
    finally:
        second.stop()
