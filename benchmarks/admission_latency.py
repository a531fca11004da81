"""Run admission latency of the local server: from runs.create to the run's first superstep.

"First superstep" is the run's first checkpoint (its input, written by the first Step
invocation), so the number covers the API's insert, the SQS FIFO doorbell, dispatch (thread
lease, StartExecution), the state machine and the Step Lambda's start. Measured through
langgraph-sdk against `stepgraph dev` (the example `chain` graph), with the queue idle and
with 100 runs enqueued at once on 10 threads; for the latter also the hand-off: from a run's
last checkpoint to the next run's first checkpoint on the same thread. Prints JSON.

    .venv/bin/python benchmarks/admission_latency.py [--idle-runs 30] [--threads 10] [--per-thread 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from datetime import datetime

from common import Server, summary
from langgraph_sdk import get_client


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def checkpoint_times(client, thread_id: str) -> dict[str, tuple[float, float]]:
    """run_id -> (first, last) checkpoint time on the thread."""
    spans: dict[str, list[float]] = defaultdict(list)
    for h in await client.threads.get_history(thread_id, limit=1000):
        spans[h["metadata"]["run_id"]].append(ts(h["created_at"]))
    return {run_id: (min(t), max(t)) for run_id, t in spans.items()}


async def idle(client, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        thread = (await client.threads.create())["thread_id"]
        created = time.time()
        run = await client.runs.create(thread, "chain", input={"items": []})
        await client.runs.join(thread, run["run_id"])
        first, _ = (await checkpoint_times(client, thread))[run["run_id"]]
        samples.append((first - created) * 1000)
    return samples


async def loaded(client, threads: int, per_thread: int) -> dict:
    thread_ids = [(await client.threads.create())["thread_id"] for _ in range(threads)]
    created: dict[str, float] = {}

    async def create(thread_id: str, i: int):
        sent = time.time()
        run = await client.runs.create(thread_id, "chain", input={"items": [str(i)]})
        created[run["run_id"]] = sent
        return run

    start = time.perf_counter()
    runs = await asyncio.gather(*(create(t, i) for i in range(per_thread) for t in thread_ids))
    enqueued = time.perf_counter() - start
    for run in runs:
        await client.runs.join(run["thread_id"], run["run_id"])
    wall = time.perf_counter() - start
    latency, handoff = [], []
    for thread_id in thread_ids:
        spans = await checkpoint_times(client, thread_id)
        ordered = sorted(spans.items(), key=lambda kv: kv[1][0])
        for i, (run_id, (first, _)) in enumerate(ordered):
            latency.append((first - created[run_id]) * 1000)
            if i:
                handoff.append((first - ordered[i - 1][1][1]) * 1000)
    statuses = [(await client.runs.get(r["thread_id"], r["run_id"]))["status"] for r in runs]
    return {
        "runs": len(runs),
        "threads": threads,
        "all_succeeded": statuses.count("success") == len(runs),
        "enqueue_all_s": round(enqueued, 2),
        "wall_s": round(wall, 2),
        "runs_per_s": round(len(runs) / wall, 1),
        "create_to_first_superstep_ms": summary(latency, 1),
        "handoff_ms": summary(handoff, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--per-thread", type=int, default=10)
    parser.add_argument("--step-mode", choices=["batched", "strict"], default="batched")
    args = parser.parse_args()
    server = Server("--step-mode", args.step_mode).wait_ready()
    try:
        client = get_client(url=server.url, timeout=120)
        await idle(client, 3)  # warm-up: graph imports, first executions
        out = {
            "server": {"url": server.url, "step_mode": args.step_mode},
            "idle": {"create_to_first_superstep_ms": summary(await idle(client, args.idle_runs), 1)},
            "loaded": await loaded(client, args.threads, args.per_thread),
        }
    finally:
        server.stop()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
