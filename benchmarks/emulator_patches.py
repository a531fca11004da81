"""What each speed-up of the emulator (`stepgraph_local.emulator`) saves the local server.

Starts one `stepgraph dev` whose emulator patches can be switched while it runs (between runs,
with the DynamoDB lock held), and drives it the way a client does (langgraph-sdk), one streamed
run at a time: a 3-node chain, or with `--steps N` a loop of N supersteps. For each speed-up,
blocks alternate: every patch installed (A), then that one left out (B), A, B... Each block
serves one run whose figures are dropped (the caches a re-install empties fill again), then
times `--runs` runs:

- `run_ms`: from the request to the stream's end, as runs.wait would take (per superstep with
  `--steps`);
- `cpu_ms`: the server's CPU time for the run (process CPU clock, every thread; per superstep
  with `--steps`);
- `first_ms`: time to the first `values` event.

Figures are lower quartiles of all of a side's runs: on a shared machine the slower runs measure
the neighbours. A patch's gain is B's lower quartile minus A's, in ms and in % of A, with a
bootstrap standard error; the first line (nothing left out: A against A) shows the noise floor.
`--prefill N` serves N runs first (tables that hold earlier runs' items).

    .venv/bin/python benchmarks/emulator_patches.py [--pairs 20] [--runs 8] [--only serializer,url_tables]
        [--steps 0] [--step-mode batched|strict] [--prefill 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import Server
from langgraph_sdk import get_client

SAME = "(nothing: A/A)"
NONE = "(every speed-up)"
METRICS = ("run_ms", "cpu_ms", "first_ms")


# ---------------------------------------------------------------- in the server's process
def serve(control: Path, argv: list[str]) -> int:
    """`stepgraph <argv>`, with a thread that re-installs the emulator as told through `control`."""
    from stepgraph_local import cli, emulator
    from stepgraph_local.emulator import _dynamodb

    def answer_requests() -> None:
        while True:
            with open(control / "request") as request:  # a FIFO: blocks until the client writes
                without = [name for name in request.read().strip().split(",") if name]
            if without != ["cpu"]:
                with _dynamodb._lock:  # no DynamoDB request runs half patched
                    emulator.uninstall()
                    emulator.install(without=without)
            with open(control / "reply", "w") as reply:
                reply.write(str(time.process_time()))

    threading.Thread(target=answer_requests, name="benchmark-control", daemon=True).start()
    return cli.main(argv)


# ---------------------------------------------------------------- in the client's process
class Control:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="stepgraph-bench-"))
        os.mkfifo(self.dir / "request")
        os.mkfifo(self.dir / "reply")

    def send(self, request: str) -> float:
        """Re-install without the speed-ups named (comma-separated), or "cpu": the server's CPU seconds."""
        with open(self.dir / "request", "w") as fifo:
            fifo.write(request)
        with open(self.dir / "reply") as fifo:
            return float(fifo.read())


async def timed_run(client: Any, control: Control, graph: str, payload: dict[str, Any]) -> dict[str, float]:
    """One streamed run: time to its first `values` event and to its end, and the server's CPU for it."""
    thread = await client.threads.create()
    cpu = control.send("cpu")
    start = time.perf_counter()
    first = None
    async for part in client.runs.stream(thread["thread_id"], graph, input=payload):
        if part.event == "values" and first is None:
            first = (time.perf_counter() - start) * 1000
    end = (time.perf_counter() - start) * 1000
    assert first is not None, "no values event"
    return {"run_ms": end, "cpu_ms": (control.send("cpu") - cpu) * 1000, "first_ms": first}


def p25(samples: list[float]) -> float:
    """The lower quartile: the runs a neighbour on the machine disturbed least."""
    return sorted(samples)[(len(samples) - 1) // 4]


def compare(a: list[float], b: list[float]) -> dict[str, float]:
    """B's lower quartile against A's, with a bootstrap standard error of the difference."""
    rng = random.Random(0)
    gain = p25(b) - p25(a)
    resampled = [p25(rng.choices(b, k=len(b))) - p25(rng.choices(a, k=len(a))) for _ in range(300)]
    error = statistics.stdev(resampled)
    base = p25(a)
    return {
        "with": round(base, 2),
        "gain_ms": round(gain, 2),
        "gain_pct": round(100 * gain / base, 1),
        "error_pct": round(100 * error / base, 1),
    }


async def measure(args: argparse.Namespace, configs: list[tuple[str, str]]) -> dict[str, Any]:
    control = Control()
    cli = (__file__, "--serve", str(control.dir), "--")  # `serve` above, in the server's process
    server = Server("--step-mode", args.step_mode, flavor="async", cli=cli).wait_ready()
    graph, payload = ("loop", {"steps": args.steps}) if args.steps else ("chain", {"items": []})
    per = args.steps or 1
    try:
        client = get_client(url=server.url, timeout=120)
        queue = list(range(args.prefill + 5))  # 5 to warm up: imports, graph loads, first parses

        async def fill() -> None:
            while queue:
                queue.pop()
                await timed_run(client, control, "chain", {"items": []})

        await asyncio.gather(*(fill() for _ in range(8 if args.prefill else 1)))
        results: dict[str, Any] = {}
        for name, without in configs:
            samples: dict[str, dict[str, list[float]]] = {side: {m: [] for m in METRICS} for side in "AB"}
            for _ in range(args.pairs):
                for side, leave_out in (("A", ""), ("B", without)):
                    control.send(leave_out)
                    await timed_run(client, control, graph, payload)  # refills the caches a re-install empties
                    for _ in range(args.runs):
                        for metric, value in (await timed_run(client, control, graph, payload)).items():
                            samples[side][metric].append(value / (per if metric != "first_ms" else 1))
            results[name] = {m: compare(samples["A"][m], samples["B"][m]) for m in METRICS}
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
        return results
    finally:
        server.stop()


def table(results: dict[str, Any]) -> str:
    lines = [f"{'left out':<20}" + "".join(f"{m + ' A':>12}{'B - A':>22}" for m in METRICS)]
    for name, figures in results.items():
        row = f"{name:<20}"
        for m in METRICS:
            f = figures[m]
            row += f"{f['with']:>12.2f}{f['gain_ms']:>+8.2f} {f['gain_pct']:>+6.1f}±{f['error_pct']:<4.1f}%"
        lines.append(row)
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="A/B block pairs per speed-up")
    parser.add_argument("--runs", type=int, default=8, help="runs timed per block")
    parser.add_argument("--steps", type=int, default=0, help="time a loop of this many supersteps, not the chain")
    parser.add_argument("--only", default="", help="comma-separated speed-ups to measure (default: all)")
    parser.add_argument("--step-mode", choices=["batched", "strict"], default="batched")
    parser.add_argument("--prefill", type=int, default=0, help="runs served (8 at a time) before measuring")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON, not a table")
    args = parser.parse_args()
    from stepgraph_local import emulator

    every = list(emulator.speed_ups())
    only = [p for p in args.only.split(",") if p]
    configs = [(SAME, ""), *((p, p) for p in only or every)]  # A/A first: the figures' noise floor
    if not only:
        configs.append((NONE, ",".join(every)))
    results = await measure(args, configs)
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        sys.exit(serve(Path(sys.argv[2]), sys.argv[sys.argv.index("--") + 1 :]))
    asyncio.run(main())
