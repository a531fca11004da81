"""`stepgraph cost <run_id>`: what a run used on AWS and its estimated price.

Reads the run through the API of a server (the local one by default: `stepgraph dev` keeps its
data in its own process), or straight from the runs table on AWS (`--region`, and `--endpoint`
for an emulator such as `stepgraph aws` or LocalStack).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepgraph.billing import PriceTable

# stepgraph's own modules (and botocore) are imported where used: `stepgraph dev` loads this
# module too, before it checks that the local runtime is installed.

__all__ = ["add_cost_command", "cost_command", "render_cost", "usage_from_api", "usage_from_table"]


class RunNotFound(LookupError):
    pass


def add_cost_command(sub: Any) -> None:
    cost = sub.add_parser("cost", help="what a run used on AWS and its estimated price")
    cost.add_argument("run_id")
    cost.add_argument("--thread", required=True, help="the run's thread id")
    cost.add_argument("--url", default="http://127.0.0.1:2024", help="the server's API (default: the local one)")
    cost.add_argument("--api-key", default=os.environ.get("LANGGRAPH_API_KEY"), help="sent as x-api-key")
    cost.add_argument("--region", default=None, help="read the runs table in this AWS region instead of the API")
    cost.add_argument("--endpoint", default=None, help="with --region: the DynamoDB endpoint (an emulator)")
    cost.add_argument("--runs-table", default=os.environ.get("STEPGRAPH_RUNS_TABLE", "RunsTable"))
    cost.add_argument("--prices", default=None, help="price table region (default: --region, else us-east-1)")


def usage_from_api(url: str, thread_id: str, run_id: str, api_key: str | None = None) -> dict[str, float]:
    """The run's `metadata["aws_usage"]` (with its recorded cost) as the API serves it."""
    from stepgraph.billing import COST_KEY

    path = f"/threads/{urllib.parse.quote(thread_id)}/runs/{urllib.parse.quote(run_id)}"
    request = urllib.request.Request(url.rstrip("/") + path, headers={"x-api-key": api_key} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            run = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise RunNotFound(f"run {run_id} not found on thread {thread_id} at {url}") from exc
        raise
    metadata = run.get("metadata") or {}
    usage: dict[str, float] = dict(metadata.get("aws_usage") or {})
    if metadata.get("aws_cost_usd") is not None:
        usage[COST_KEY] = float(metadata["aws_cost_usd"])
    return usage


def usage_from_table(dynamodb: Any, table: str, thread_id: str, run_id: str) -> dict[str, float]:
    """The run's usage attributes, read from the runs table."""
    from stepgraph.storage.runs import RunStore

    run = RunStore(dynamodb, table).get(thread_id, run_id)
    if run is None:
        raise RunNotFound(f"run {run_id} not found on thread {thread_id} in {table}")
    return dict(run.get("aws_usage") or {})


def render_cost(run_id: str, usage: Mapping[str, float], prices: PriceTable) -> str:
    """One line per kind of usage with its price, then the total, priced with the current table."""
    from stepgraph.billing import COST_KEY

    counted = {key: amount for key, amount in sorted(usage.items()) if key != COST_KEY}
    items = prices.line_items(counted)
    lines = [f"run {run_id}: AWS usage, priced for {prices.region} (prices as of {prices.as_of})"]
    width = max((len(key) for key in counted), default=10)
    for key, amount in counted.items():
        dollars = f"${items[key]:.8f}" if key in items else "(no price)"
        lines.append(f"  {key:<{width}}  {amount:>14.4f}  {dollars:>14}")
    total = sum(items.values())
    lines.append(f"  {'total':<{width}}  {'':>14}  {f'${total:.8f}':>14}")
    lines.append(f"  per 1,000 such runs: ${total * 1000:.4f}")
    return "\n".join(lines)


def cost_command(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError
    from stepgraph.billing import UnknownRegion, price_table

    try:
        prices = price_table(args.prices or args.region or "us-east-1")
    except UnknownRegion as exc:
        print(f"stepgraph cost: {exc}", file=sys.stderr)
        return 2
    try:
        if args.region:
            from stepgraph.settings import Clients, Settings

            settings = Settings(region=args.region, endpoint_url=args.endpoint)
            usage = usage_from_table(Clients(settings).dynamodb, args.runs_table, args.thread, args.run_id)
        else:
            usage = usage_from_api(args.url, args.thread, args.run_id, args.api_key)
    except RunNotFound as exc:
        print(f"stepgraph cost: {exc}", file=sys.stderr)
        return 1
    except (OSError, BotoCoreError, ClientError) as exc:  # unreachable, no credentials, access denied
        print(f"stepgraph cost: cannot read the run: {exc}", file=sys.stderr)
        return 1
    if not usage:
        print(f"run {args.run_id}: no AWS usage recorded yet")
        return 0
    print(render_cost(args.run_id, usage, prices))
    return 0
