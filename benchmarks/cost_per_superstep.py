"""What 1,000 supersteps cost on AWS, from the usage runs record (engine/usage.py) and the price
table (functions/stepgraph/billing/prices/), for each step mode on the chain and loop graphs.

Starts `stepgraph dev` in batched and in strict mode, runs each graph a few times through
langgraph-sdk, and prints JSON: per mode and graph, the mean usage per run and the dollars per
1,000 supersteps, split by service; then one line comparing with LangSmith Deployment's price.

    .venv/bin/python benchmarks/cost_per_superstep.py [--runs 3] [--loop-steps 50] [--flavor async|sync]

Lambda GB-seconds are the handlers' own durations here, on the local runtime (moto answering
every AWS call in-process on a shared machine): on AWS the calls take network time instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict

from common import Server
from langgraph_sdk import get_client
from stepgraph.billing import price_table

# LangSmith Deployment (formerly LangGraph Platform): "An Agent Run is one end-to-end invocation
# of a deployed LangGraph agent and is billed at $0.005 each. Nodes and subgraphs within a single
# agent execution are not charged separately" (plus deployment uptime, per minute). Source:
# langchain-ai/docs, src/langsmith/billing.mdx, "LangSmith Deployment billing" (PR #1615, 2025).
PEER_USD_PER_RUN = 0.005
PEER_SOURCE = "LangSmith Deployment billing, langchain-ai/docs src/langsmith/billing.mdx (PR #1615)"


async def billed_run(client, graph: str, payload: dict) -> dict[str, float]:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], graph, input=payload)
    await client.runs.join(thread["thread_id"], run["run_id"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # Finish and the API request add themselves once done
        metadata = (await client.runs.get(thread["thread_id"], run["run_id"]))["metadata"] or {}
        usage = metadata.get("aws_usage") or {}
        if {"lambda.finish.invocations", "lambda.api.invocations"} <= usage.keys():
            return usage
        await asyncio.sleep(0.02)
    raise RuntimeError(f"run {run['run_id']} was never billed for its finish")


def service_of(key: str) -> str:
    return key.split(".")[0]


async def measure_mode(mode: str, runs: int, loop_steps: int, flavor: str) -> dict[str, dict]:
    prices = price_table("us-east-1")
    server = Server("--step-mode", mode, flavor=flavor).wait_ready()
    try:
        client = get_client(url=server.url)
        results = {}
        # chain: three nodes, one superstep each; loop: `steps` supersteps of one node.
        for graph, payload, supersteps in (
            ("chain", {"items": ["x"]}, 3),
            ("loop", {"steps": loop_steps}, loop_steps),
        ):
            totals: dict[str, float] = defaultdict(float)
            for _ in range(runs):
                for key, amount in (await billed_run(client, graph, payload)).items():
                    if key != "cost_usd":
                        totals[key] += amount
            per_run = {key: amount / runs for key, amount in sorted(totals.items())}
            by_service: dict[str, float] = defaultdict(float)
            for key, dollars in prices.line_items(per_run).items():
                by_service[service_of(key)] += dollars * 1000 / supersteps
            usd = prices.cost(per_run) * 1000 / supersteps
            results[graph] = {
                "supersteps_per_run": supersteps,
                "usage_per_run": {key: round(amount, 4) for key, amount in per_run.items()},
                "usd_per_1000_supersteps": round(usd, 5),
                "usd_per_1000_supersteps_by_service": {k: round(v, 5) for k, v in sorted(by_service.items())},
                "peer_usd_per_1000_supersteps": round(PEER_USD_PER_RUN * 1000 / supersteps, 5),
            }
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loop-steps", type=int, default=50)
    parser.add_argument("--flavor", default="async", choices=["async", "sync"])
    args = parser.parse_args()
    prices = price_table("us-east-1")
    report = {
        "prices": f"{prices.region} as of {prices.as_of}",
        **{
            mode: asyncio.run(measure_mode(mode, args.runs, args.loop_steps, args.flavor))
            for mode in ("batched", "strict")
        },
    }
    print(json.dumps(report, indent=2))
    for mode in ("batched", "strict"):
        for graph, figures in report[mode].items():  # type: ignore[attr-defined]
            print(
                f"{mode:>7} {graph:<5}: ${figures['usd_per_1000_supersteps']:.4f} per 1,000 supersteps on AWS; "
                f"LangSmith Deployment: ${figures['peer_usd_per_1000_supersteps']:.4f} "
                f"(${PEER_USD_PER_RUN}/agent run, {figures['supersteps_per_run']} supersteps a run, uptime extra; "
                f"{PEER_SOURCE})"
            )


if __name__ == "__main__":
    main()
