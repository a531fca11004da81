"""The AWS calls of one run, replayed against the emulator with and without each speed-up.

End-to-end timings (emulator_patches.py) on a shared machine cannot tell a 2% gain from noise.
This measures the emulator's part alone, single-threaded. It serves a few runs on the local
runtime in-process (through the API app: thread create + runs.wait of a 3-node chain; with
`--steps N` a loop of N supersteps; with `--state-kb N` the chain started with N KB of state)
and records every call stepgraph's clients make (operation and parameters). Then, on a fresh
emulated account, it replays that list through the same clients, every id in it renamed per
replay, so that each replay does the run's writes, conditions and reads anew. Lambda Invoke and
StartExecution are left out: the handler and state machine work they start is in the list
already, as the calls it made (so the Step Functions speed-ups are not measured here: see
emulator_patches.py).

For each speed-up, blocks alternate: every patch (A), that one left out (B), A, B...; each block
replays once untimed (the caches a re-install empties fill again), then times `--replays`
replays, call by call, by this thread's CPU clock. A side's cost is the sum over the calls of
each call's fastest time (what an undisturbed machine would take); the gain is B's cost minus
A's, per run (per superstep with `--steps`), in ms and in % of A, with an error of half the
difference between the gains of the odd and the even pairs. The first line (nothing left out:
A against A) shows the noise floor.

    .venv/bin/python benchmarks/emulator_replay.py [--pairs 30] [--replays 5] [--only serializer]
        [--steps 0] [--step-mode batched|strict] [--state-kb 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import json
import os
import re
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

from botocore import xform_name
from botocore.client import BaseClient
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[1]
SAME = "(nothing: A/A)"
NONE = "(every speed-up)"
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NOT_REPLAYED = {("lambda", "Invoke"), ("stepfunctions", "StartExecution")}

Call = tuple[str, str, dict[str, Any]]  # service, operation, parameters


def record(graph: str, payload: dict[str, Any], step_mode: str) -> list[Call]:
    """The calls stepgraph's clients make for one run (the last of four), in the order made."""
    import httpx
    from stepgraph.api import create_app
    from stepgraph_local.runtime import LocalRuntime

    os.environ.setdefault("EXAMPLE_NODES", "async")
    runtime = LocalRuntime(step_mode=step_mode).start()
    calls: list[Call] = []
    lock = threading.Lock()
    make_api_call = BaseClient._make_api_call

    def recording(client: Any, operation: str, params: dict[str, Any]) -> Any:
        with lock:
            calls.append((client.meta.service_model.service_name, operation, copy.deepcopy(params)))
        return make_api_call(client, operation, params)

    async def one_run(http: httpx.AsyncClient) -> None:
        thread = (await http.post("/threads", json={})).json()
        body = {"assistant_id": graph, "input": payload}
        response = await http.post(f"/threads/{thread['thread_id']}/runs/wait", json=body)
        response.raise_for_status()
        await asyncio.sleep(0.3)  # the state machine's last states, the poller's next receive

    async def drive() -> None:
        transport = httpx.ASGITransport(app=create_app(runtime.ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as http:
            for _ in range(3):
                await one_run(http)
            calls.clear()
            await one_run(http)

    try:
        with mock.patch.object(BaseClient, "_make_api_call", recording):
            asyncio.run(drive())
    finally:
        runtime.stop()
    return [call for call in calls if (call[0], call[1]) not in _NOT_REPLAYED]


def renamed(value: Any, names: dict[str, str]) -> Any:
    """`value` with every uuid in it replaced, the same way throughout (new ones per replay)."""

    def rename(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), str(uuid.uuid4()))

    if isinstance(value, str):
        return _ID.sub(rename, value)
    if isinstance(value, bytes):
        return _ID.sub(rename, value.decode("latin-1")).encode("latin-1")
    if isinstance(value, dict):
        return {renamed(k, names): renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, names) for v in value]
    return value


def replay(calls: list[Call], clients: Any) -> list[float]:
    """Make the calls once, with fresh ids; return this thread's CPU milliseconds for each."""
    names: dict[str, str] = {}
    prepared = []
    for service, operation, params in calls:
        params = renamed(params, names)
        if operation == "ReceiveMessage":
            params["WaitTimeSeconds"] = 0
        method = getattr(clients.client(service), xform_name(operation))
        prepared.append((method, params))
    deferred: Any = None  # the run's poller had received the message it deletes before the run began
    times = []
    for method, params in prepared:
        if method.__name__ == "delete_message_batch":
            deferred = method, params  # deleted once this replay has received its own (and timed with it)
            continue
        response: Any = {}
        start = time.thread_time()
        with contextlib.suppress(ClientError):  # as in the run: a condition that failed there fails here
            response = method(**params)
        if method.__name__ == "receive_message" and deferred and response.get("Messages"):
            delete, delete_params = deferred
            handles = [m["ReceiptHandle"] for m in response["Messages"]]
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
            delete(**{**delete_params, "Entries": entries})
            deferred = None
        times.append((time.thread_time() - start) * 1000)
    return times


def cost(replays: list[list[float]]) -> float:
    """A replay's cost on an undisturbed machine: each call's fastest time, summed. On a shared
    machine most samples include a neighbour's load; each call's minimum over many replays does not."""
    return sum(min(column) for column in zip(*replays))


def compare(a: list[list[float]], b: list[list[float]], per: int) -> dict[str, float]:
    """B's cost against A's; the error is half the difference between the two halves' gains."""
    base, gain = cost(a) / per, (cost(b) - cost(a)) / per
    halves = [(cost(b[i::2]) - cost(a[i::2])) / per for i in (0, 1)]
    return {
        "with_ms": round(base, 3),
        "gain_ms": round(gain, 3),
        "gain_pct": round(100 * gain / base, 1),
        "error_pct": round(100 * abs(halves[0] - halves[1]) / 2 / base, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30, help="A/B block pairs per speed-up")
    parser.add_argument("--replays", type=int, default=5, help="replays timed per block")
    parser.add_argument(
        "--only", default="", help="speed-ups to measure, separated by commas; a+b: left out together (default: all)"
    )
    parser.add_argument("--steps", type=int, default=0, help="replay a loop of this many supersteps, not the chain")
    parser.add_argument("--step-mode", choices=["batched", "strict"], default="batched")
    parser.add_argument("--state-kb", type=int, default=0, help="start the run with a state of about this size")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON, not a table")
    args = parser.parse_args()

    from stepgraph.settings import Clients, Settings
    from stepgraph_local import emulator
    from stepgraph_local.aws import LocalAWS

    graph, payload = ("loop", {"steps": args.steps}) if args.steps else ("chain", {"items": []})
    if args.state_kb:
        payload["items"] = ["x" * 1000] * args.state_kb  # the chain's state: a list of strings
    calls = record(graph, payload, args.step_mode)
    per = args.steps or 1
    counts: dict[str, int] = {}
    for service, operation, _ in calls:
        counts[f"{service}.{operation}"] = counts.get(f"{service}.{operation}", 0) + 1
    print(f"{len(calls)} calls replayed per run: {counts}", file=sys.stderr)

    aws = LocalAWS(ROOT / "template.yaml").start()
    try:
        clients = Clients(dataclasses.replace(Settings.from_env(), sign_requests=False))
        every = list(emulator.speed_ups())
        only = [p for p in args.only.split(",") if p]
        configs = [(SAME, ""), *((p, p.replace("+", ",")) for p in only or every)]  # A/A first: the noise floor
        if not only:
            configs.append((NONE, ",".join(every)))
        results = {}
        for name, without in configs:
            samples: dict[str, list[list[float]]] = {"A": [], "B": []}
            for _ in range(args.pairs):
                for side, leave_out in (("A", []), ("B", [n for n in without.split(",") if n])):
                    emulator.uninstall()
                    emulator.install(without=leave_out)
                    replay(calls, clients)
                    samples[side] += [replay(calls, clients) for _ in range(args.replays)]
            results[name] = compare(samples["A"], samples["B"], per)
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    finally:
        aws.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'left out':<20}{'A ms':>9}{'B - A ms':>10}{'B - A %':>16}")
    for name, f in results.items():
        print(f"{name:<20}{f['with_ms']:>9.2f}{f['gain_ms']:>+10.2f}{f['gain_pct']:>+10.1f} ±{f['error_pct']:.1f}")


if __name__ == "__main__":
    main()
