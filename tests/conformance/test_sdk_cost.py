"""A run's AWS bill, seen the way users see it: in the run's metadata through langgraph-sdk, and
priced by `stepgraph cost` against the local server."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from langgraph_sdk import get_client
from stepgraph_local import cli

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_run_metadata_carries_its_aws_usage_and_stepgraph_cost_prints_dollars(server, capsys):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "chain", input={"items": ["x"]})
    await client.runs.join(thread["thread_id"], run["run_id"])
    deadline = time.monotonic() + 20
    while True:  # Finish and the API request add themselves to the bill once they are done
        metadata = (await client.runs.get(thread["thread_id"], run["run_id"]))["metadata"]
        billed = metadata.get("aws_usage", {})
        if {"lambda.finish.invocations", "lambda.api.invocations"} <= billed.keys() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    usage = metadata["aws_usage"]
    assert usage["lambda.step.invocations"] >= 1 and usage["lambda.finish.invocations"] == 1
    # The request that created the run: one API Gateway request, one API invocation (not the join).
    assert usage["apigateway.requests"] == usage["lambda.api.invocations"] == 1
    assert usage["sqs.requests"] >= 1  # its doorbell
    assert usage["stepfunctions.transitions"] >= 4  # Start, Step, Route, ..., Finish, Done
    assert usage["dynamodb.write_units"] > 0 and usage["lambda.step.gb_seconds"] > 0
    assert 0 < metadata["aws_cost_usd"] < 0.01

    code = await asyncio.to_thread(
        cli.main, ["cost", run["run_id"], "--thread", thread["thread_id"], "--url", server.url]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert float(total.split("$")[1]) == pytest.approx(metadata["aws_cost_usd"], rel=1e-3)
    assert "prices as of" in out and "lambda.step.gb_seconds" in out

    missing = await asyncio.to_thread(
        cli.main, ["cost", str(uuid.uuid4()), "--thread", thread["thread_id"], "--url", server.url]
    )
    assert missing == 1 and "not found" in capsys.readouterr().err
