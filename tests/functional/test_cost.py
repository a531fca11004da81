"""A run's AWS bill: every handler invocation adds what it used onto the run (engine/usage.py),
and `stepgraph cost` prices it."""

from __future__ import annotations

import uuid

import pytest
from harness import until
from stepgraph.api.runs import create_run, run_to_wire
from stepgraph.api.schemas import RunCreate
from stepgraph.api.threads import new_thread
from stepgraph.billing import price_table
from stepgraph_local import cli
from stepgraph_local.cost import usage_from_table
from stepgraph_local.runtime import LocalRuntime


@pytest.fixture(scope="module")
def strict_runtime():
    """One strict-mode runtime for the module (each test has its own threads)."""
    started = LocalRuntime(step_mode="strict").start()
    yield started
    started.stop()


def _billed(runtime, thread_id: str, run_id: str, *functions: str) -> dict:
    """The run once each of `functions` has added its invocation to the run's bill."""
    keys = {f"lambda.{function}.invocations" for function in functions}
    return until(
        lambda: (r := runtime.ctx.runs.get(thread_id, run_id)) and keys <= r.get("aws_usage", {}).keys() and r,
        timeout=30,
        what=f"{', '.join(functions)} on the bill of {run_id}",
    )


def _finished_usage(runtime, graph_id: str, payload: dict) -> tuple[dict, dict]:
    """Run `graph_id` to its end; the run once Finish has added its invocation to the bill."""
    thread_id = str(uuid.uuid4())
    new_thread(runtime.ctx, thread_id, {})
    run_id = create_run(runtime.ctx, thread_id, RunCreate(assistant_id=graph_id, input=payload))["run_id"]
    run = _billed(runtime, thread_id, run_id, "finish")
    return run, run["aws_usage"]


def _entered_states(runtime, run_id: str) -> list[str]:
    """The states the run's execution entered: each one a billed state transition."""
    sfn = runtime.aws.client("stepfunctions")
    arn = runtime.ctx.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", timeout=10, what="execution end")
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def test_a_chain_run_records_what_it_used_on_aws(strict_runtime, capsys, monkeypatch):
    run, usage = _finished_usage(strict_runtime, "chain", {"items": ["x"]})
    assert run["status"] == "success"
    states = _entered_states(strict_runtime, run["run_id"])
    checkpoints = list(strict_runtime.ctx.checkpointer.list({"configurable": {"thread_id": run["thread_id"]}}))

    # Strict mode: one Step invocation per checkpointed superstep (input, a, b, c, final).
    assert usage["lambda.step.invocations"] == states.count("Step") == len(checkpoints) == 5
    assert usage["lambda.dispatch.invocations"] == 1
    assert usage["lambda.finish.invocations"] == 1
    # Every state the execution entered is a billed transition, and nothing else is.
    assert usage["stepfunctions.transitions"] == len(states)
    # 1024 MB functions (template.yaml): at least 1 ms each, far below their 60 s timeout.
    for function in ("step", "dispatch", "finish"):
        invocations = usage[f"lambda.{function}.invocations"]
        assert invocations * 0.001 <= usage[f"lambda.{function}.gb_seconds"] < invocations * 60
    # Each checkpoint is at least one written item; the step reads the run, the thread, checkpoints.
    assert usage["dynamodb.write_units"] >= len(checkpoints)
    assert usage["dynamodb.read_units"] >= usage["lambda.step.invocations"]

    prices = price_table("us-east-1")
    assert run["aws_usage"]["cost_usd"] == pytest.approx(prices.cost(usage), rel=1e-6)
    wire = run_to_wire(run)["metadata"]
    assert wire["aws_cost_usd"] > 0 and wire["aws_usage"]["lambda.step.invocations"] == 5

    # `stepgraph cost` against the runs table, as on AWS (with the caller's credentials): here
    # the in-process emulator answers.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert usage_from_table(strict_runtime.ctx.clients.dynamodb, "RunsTable", run["thread_id"], run["run_id"])
    table = strict_runtime.ctx.settings.runs_table
    code = cli.main(
        ["cost", run["run_id"], "--thread", run["thread_id"], "--region", "us-east-1", "--runs-table", table]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "lambda.step.invocations" in out and "prices as of" in out
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert float(total.split("$")[1]) == pytest.approx(prices.cost(usage), rel=1e-3)

    # A bill arriving for a run that is gone (its thread deleted) does not bring the run back.
    assert not strict_runtime.ctx.runs.add_usage(run["thread_id"], str(uuid.uuid4()), {"stepfunctions.transitions": 1})


def test_a_parked_and_resumed_run_bills_every_transition_of_its_execution(strict_runtime):
    ctx = strict_runtime.ctx
    thread_id = str(uuid.uuid4())
    new_thread(ctx, thread_id, {})
    first = create_run(ctx, thread_id, RunCreate(assistant_id="approval", input={"items": []}))
    parked = _billed(strict_runtime, thread_id, first["run_id"], "park")
    resume = create_run(ctx, thread_id, RunCreate(assistant_id="approval", command={"resume": "yes"}))
    resumed = _billed(strict_runtime, thread_id, resume["run_id"], "finish")
    # One execution carries both runs (Park, then Resume into the resume run's Steps): between
    # them, the two bills hold each state it entered once.
    states = _entered_states(strict_runtime, first["run_id"])
    assert "Park" in states and "Resume" in states
    transitions = parked["aws_usage"]["stepfunctions.transitions"] + resumed["aws_usage"]["stepfunctions.transitions"]
    assert transitions == len(states)
    assert (
        parked["aws_usage"]["lambda.park.invocations"] == 1 and "lambda.finish.invocations" not in parked["aws_usage"]
    )
    # The resume was admitted by dispatch (SendTaskSuccess): its bill has that invocation too.
    assert resumed["aws_usage"]["lambda.dispatch.invocations"] == 1
