"""Run overhead of the local server, measured through langgraph-sdk the way a client sees it.

Starts `stepgraph dev` (batched and strict) on free ports, serving the example graphs with async
nodes (as users write them; `--flavor sync` for the sync ones), and prints JSON:
ms per superstep (50-step loop), runs.wait p50/p95 (3-node chain), time to first stream event,
runs/s with 16 concurrent clients (again after 1,000 runs), and the server's resident memory
after 1,000 runs.

    .venv/bin/python benchmarks/run_overhead.py [--runs-for-memory 1000] [--quick] [--flavor sync|async]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from common import Server, summary
from langgraph_sdk import get_client


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def timed_wait(client, graph: str, payload: dict) -> float:
    thread = await client.threads.create()
    start = time.perf_counter()
    await client.runs.wait(thread["thread_id"], graph, input=payload)
    return (time.perf_counter() - start) * 1000


async def superstep_cost(client, reps: int) -> dict[str, float]:
    one = [await timed_wait(client, "loop", {"steps": 1}) for _ in range(reps)]
    fifty = [await timed_wait(client, "loop", {"steps": 50}) for _ in range(reps)]
    cadences = []
    for _ in range(reps):
        thread = await client.threads.create()
        stamps = []
        async for part in client.runs.stream(thread["thread_id"], "loop", input={"steps": 50}, stream_mode="values"):
            if part.event == "values":
                stamps.append(time.perf_counter())
        cadences.append((stamps[-1] - stamps[0]) * 1000 / 50)
    t1, t50 = statistics.median(one), statistics.median(fifty)
    return {
        "run_1_step_ms_median": round(t1, 2),
        "run_50_steps_ms_median": round(t50, 2),
        "ms_per_step_total": round(t50 / 50, 3),
        "ms_per_step_marginal": round((t50 - t1) / 49, 3),
        "ms_per_step_stream_cadence": round(statistics.median(cadences), 3),
    }


async def first_event(client, n: int) -> tuple[list[float], list[float]]:
    first, first_values = [], []
    for _ in range(n):
        thread = await client.threads.create()
        start = time.perf_counter()
        seen_values = False
        async for part in client.runs.stream(thread["thread_id"], "chain", input={"items": []}):
            now = (time.perf_counter() - start) * 1000
            if part.event == "metadata":
                first.append(now)
            elif part.event == "values" and not seen_values:
                first_values.append(now)
                seen_values = True
    return first, first_values


async def throughput(client, runs: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(runs):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            latencies.append(await timed_wait(client, "chain", {"items": []}))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return {
        "runs": runs,
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "runs_per_s": round(runs / wall, 1),
        "latency_ms": summary(latencies),
    }


async def measure(server: Server, args: argparse.Namespace, full: bool) -> dict:
    client = get_client(url=server.url, timeout=120)
    for _ in range(5):  # warm-up: imports, first graph loads, boto3 clients
        await timed_wait(client, "chain", {"items": []})
    out: dict = {"superstep": await superstep_cost(client, args.reps)}
    if not full:
        return out
    waits = [await timed_wait(client, "chain", {"items": []}) for _ in range(args.sequential)]
    out["sequential_runs_wait_ms"] = summary(waits)
    first, first_values = await first_event(client, args.streams)
    out["stream_first_event_ms"] = summary(first)
    out["stream_first_values_event_ms"] = summary(first_values)
    out["throughput"] = await throughput(client, args.throughput_runs, 16)
    done = args.sequential + args.streams + args.throughput_runs + 5 + 3 * args.reps
    remaining = max(args.runs_for_memory - done, 0)
    await throughput(client, remaining, 16)
    out["memory"] = {"runs_served": done + remaining, "rss_mb": rss_mb(server.proc.pid)}
    # The same load again, now that the tables hold every earlier run: a cost that grows with
    # the data (an emulated Query reading the whole table did) shows up as a lower rate here.
    out["throughput_after_memory_runs"] = await throughput(client, args.throughput_runs, 16)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--streams", type=int, default=30)
    parser.add_argument("--throughput-runs", type=int, default=200)
    parser.add_argument("--runs-for-memory", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    parser.add_argument(
        "--flavor", choices=["async", "sync"], default="async", help="how the graphs' nodes are written"
    )
    args = parser.parse_args()
    if args.quick:
        args.reps, args.sequential, args.streams, args.throughput_runs, args.runs_for_memory = 2, 20, 10, 48, 100
    report: dict = {"flavor": args.flavor}
    for mode, full in (("batched", True), ("strict", False)):
        server = Server("--step-mode", mode, flavor=args.flavor).wait_ready()
        try:
            report[mode] = await measure(server, args, full)
        finally:
            server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
