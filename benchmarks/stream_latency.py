"""Streaming and resume latency of the local server; prints JSON.

- writer → client: a node writes custom events with get_stream_writer(), each stamped with the
  wall clock at the write (examples/graphs.py `writer`); a langgraph-sdk client of `stepgraph dev`
  (a subprocess, as in the tests) subtracts that stamp from its own clock when the event arrives.
  "paced": one event every 10 ms (like tokens); "burst": all at once (the log writes in batches).
- resume: the time from the admission's SendTaskSuccess on the parked run's task token to the
  Step Lambda starting the resume's first superstep in the same execution (Park → Resume → Step).
  Measured in-process on the local runtime, where both ends can be timed; also the time from
  the client's runs.create(command=resume) to that Step start (includes SQS admission).

    .venv/bin/python benchmarks/stream_latency.py [--runs 5] [--resumes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from common import Server, summary
from langgraph_sdk import get_client


async def writer_to_client(url: str, runs: int, count: int, interval: float) -> list[float]:
    client = get_client(url=url)
    samples: list[float] = []
    for _ in range(runs):
        thread = await client.threads.create()
        async for part in client.runs.stream(
            thread["thread_id"], "writer", input={"count": count, "interval": interval}, stream_mode="custom"
        ):
            if part.event == "custom":
                samples.append((time.time() - part.data["at"]) * 1000)
    return samples


def resume_latency(resumes: int) -> dict[str, dict[str, float]]:
    from stepgraph.api.runs import create_run
    from stepgraph.api.schemas import RunCreate
    from stepgraph.api.threads import new_thread
    from stepgraph_local.emulator import lambda_hook
    from stepgraph_local.runtime import LocalRuntime

    runtime = LocalRuntime().start()
    ctx = runtime.ctx
    sent: dict[str, float] = {}  # resume run id -> SendTaskSuccess time
    step_started: dict[str, float] = {}  # run id -> first Step invocation time
    sfn = ctx.clients.sfn
    send_task_success = sfn.send_task_success

    def timed_send(**kwargs):
        sent[json.loads(kwargs["output"])["run_id"]] = time.perf_counter()
        return send_task_success(**kwargs)

    sfn.send_task_success = timed_send
    step = lambda_hook._resolve("StepFunction")  # the real handler, timed at entry

    def timed_step(event, context):
        step_started.setdefault(event["run_id"], time.perf_counter())
        return step(event, context)

    lambda_hook.register("StepFunction", timed_step)

    def until(predicate, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.001)

    def resume_once() -> tuple[float, float]:
        """Park a run and resume it: ms from SendTaskSuccess, and from the resume's create, to its Step."""
        thread_id = str(uuid.uuid4())
        new_thread(ctx, thread_id, {})
        create_run(ctx, thread_id, RunCreate(assistant_id="approval", input={"items": []}))
        until(lambda: ctx.threads.get(thread_id).get("task_token"))
        created = time.perf_counter()
        run = create_run(ctx, thread_id, RunCreate(assistant_id="approval", command={"resume": "ok"}))
        until(lambda: run["run_id"] in step_started)
        until(lambda: ctx.runs.get(thread_id, run["run_id"])["status"] == "success")
        started = step_started[run["run_id"]]
        return (started - sent[run["run_id"]]) * 1000, (started - created) * 1000

    to_step, from_create = [], []
    try:
        for i in range(resumes + 2):
            from_send, from_created = resume_once()
            if i >= 2:  # warm-up: imports, first boto3 calls
                to_step.append(from_send)
                from_create.append(from_created)
    finally:
        runtime.stop()
    return {
        "send_task_success_to_step_start_ms": summary(to_step),
        "runs_create_to_step_start_ms": summary(from_create),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="writer runs per variant")
    parser.add_argument("--resumes", type=int, default=30)
    args = parser.parse_args()
    server = Server().wait_ready()
    try:
        paced = asyncio.run(writer_to_client(server.url, args.runs, 100, 0.01))
        burst = asyncio.run(writer_to_client(server.url, args.runs, 100, 0.0))
    finally:
        server.stop()
    out = {
        "writer_to_client_ms": {"paced_10ms": summary(paced), "burst": summary(burst)},
        "resume": resume_latency(args.resumes),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
