"""What each speed-up of the emulator (`stepgraph_local.emulator`) saves the local server.

For each speed-up, starts `stepgraph dev` with every patch, and again with that one left out
(`emulator.install(without=...)`), and drives both the way a client does (langgraph-sdk):

- `wait_ms`: runs.wait of a 3-node chain, p50 (wall clock);
- `cpu_ms`: the server's CPU time per such run (user + system), less sensitive than the wall clock
  to other processes on the machine;
- `step_ms`: a 50-superstep loop's runs.wait, per superstep, median;
- `first_ms`: time to the first `values` event of a streamed chain run, p50.

Rounds alternate the configurations (all patches first, then each one left out, then all again),
so neighbours on a shared machine weigh on both sides; the table gives each figure's median over
the rounds and the gain of the patch (left out minus all).

    .venv/bin/python benchmarks/emulator_patches.py [--rounds 3] [--runs 30] [--only serializer,url_tables]
        [--step-mode batched|strict] [--prefill 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import Server, summary
from langgraph_sdk import get_client

ALL = "(all patches)"
NONE = "(no speed-up)"
_TICKS = os.sysconf("SC_CLK_TCK")


def serve(without: list[str], argv: list[str]) -> int:
    """`stepgraph <argv>`, with the speed-ups in `without` left out (run in the server's process)."""
    from stepgraph_local import cli, emulator

    install = emulator.install
    emulator.install = lambda *args, **kwargs: install(without=without)  # what LocalAWS.start() calls
    return cli.main(argv)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


async def timed_wait(client, graph: str, payload: dict) -> float:
    thread = await client.threads.create()
    start = time.perf_counter()
    await client.runs.wait(thread["thread_id"], graph, input=payload)
    return (time.perf_counter() - start) * 1000


async def first_values(client) -> float:
    thread = await client.threads.create()
    start = time.perf_counter()
    first = None
    async for part in client.runs.stream(thread["thread_id"], "chain", input={"items": []}):
        if part.event == "values" and first is None:
            first = (time.perf_counter() - start) * 1000
    assert first is not None, "no values event"
    return first


async def measure(server: Server, runs: int, prefill: int) -> dict[str, float]:
    client = get_client(url=server.url, timeout=120)
    queue = list(range(prefill))

    async def fill() -> None:  # earlier runs' items in every table: a cost growing with them shows
        while queue:
            queue.pop()
            await timed_wait(client, "chain", {"items": []})

    await asyncio.gather(*(fill() for _ in range(8)))
    for _ in range(5):  # warm-up: imports, first graph loads, boto3 clients, first parses
        await timed_wait(client, "chain", {"items": []})
    await timed_wait(client, "loop", {"steps": 2})
    cpu = cpu_seconds(server.proc.pid)
    waits = [await timed_wait(client, "chain", {"items": []}) for _ in range(runs)]
    cpu_ms = (cpu_seconds(server.proc.pid) - cpu) * 1000 / runs
    steps = [await timed_wait(client, "loop", {"steps": 50}) / 50 for _ in range(3)]
    firsts = [await first_values(client) for _ in range(max(5, runs // 3))]
    return {
        "wait_ms": summary(waits)["p50"],
        "cpu_ms": round(cpu_ms, 2),
        "step_ms": round(statistics.median(steps), 2),
        "first_ms": summary(firsts)["p50"],
    }


async def run_config(without: list[str], runs: int, step_mode: str, prefill: int) -> dict[str, float]:
    cli = (__file__, "--serve", ",".join(without), "--")  # `serve` below, in the server's process
    server = Server("--step-mode", step_mode, flavor="async", cli=cli).wait_ready()
    try:
        return await measure(server, runs, prefill)
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30, help="chain runs timed per server")
    parser.add_argument("--only", default="", help="comma-separated speed-ups to measure (default: all)")
    parser.add_argument("--step-mode", choices=["batched", "strict"], default="batched")
    parser.add_argument("--prefill", type=int, default=0, help="runs served (8 at a time) before measuring")
    parser.add_argument("--json", action="store_true", help="print the medians as JSON, not a table")
    args = parser.parse_args()
    from stepgraph_local import emulator

    patches = [p for p in args.only.split(",") if p] or list(emulator.speed_ups())
    configs: list[tuple[str, list[str]]] = [(ALL, []), *((p, [p]) for p in patches)]
    if not args.only:
        configs.append((NONE, list(emulator.speed_ups())))
    samples: dict[str, list[dict[str, float]]] = {name: [] for name, _ in configs}
    for round_ in range(args.rounds):
        for name, without in [*configs, (ALL, [])]:
            samples[name].append(await run_config(without, args.runs, args.step_mode, args.prefill))
            print(f"round {round_ + 1} {name}: {samples[name][-1]}", file=sys.stderr, flush=True)
    medians = {
        name: {k: round(statistics.median(s[k] for s in runs), 2) for k in runs[0]} for name, runs in samples.items()
    }
    if args.json:
        print(json.dumps(medians, indent=2))
        return
    base = medians[ALL]
    metrics = list(base)
    print(f"{'left out':<20}" + "".join(f"{m:>10}{'gain':>16}" for m in metrics))
    for name, figures in medians.items():
        row = f"{name:<20}"
        for m in metrics:
            gain = figures[m] - base[m]
            row += f"{figures[m]:>10.2f}" + (
                f"{gain:>+9.2f} {100 * gain / figures[m]:>+5.1f}%" if name != ALL else " " * 16
            )
        print(row)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        without = [p for p in sys.argv[2].split(",") if p]
        sys.exit(serve(without, sys.argv[sys.argv.index("--") + 1 :]))
    asyncio.run(main())
