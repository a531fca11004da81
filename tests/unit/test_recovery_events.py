"""The events the reaper and the sweeper receive: AWS's shapes (events/), the template's rule
that selects them, and the hand-over threshold that keeps an execution below its history cap."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from moto.events.models import EventPattern
from stepgraph.engine.handover import history_bound
from stepgraph.models import ExecutionStatusChange
from stepgraph.settings import Settings
from stepgraph_local import load_template

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "events" / "reaper.json").read_text())
RESOURCES = load_template(ROOT / "template.yaml")["Resources"]


def _rule() -> EventPattern:
    """The reaper's rule, its state machine named as the sample event names it."""
    pattern = copy.deepcopy(RESOURCES["ReaperFunction"]["Properties"]["Events"]["RunExecutionEnded"])
    pattern = pattern["Properties"]["Pattern"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": "RunStateMachine"}]
    pattern["detail"]["stateMachineArn"] = [SAMPLE["detail"]["stateMachineArn"]]
    return EventPattern.load(json.dumps(pattern))


def test_the_sample_status_change_parses_into_the_run_it_concerns():
    change = ExecutionStatusChange.model_validate(SAMPLE).detail
    assert change.input.thread_id == "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    assert change.input.run_id == change.name == change.execution_arn.rsplit(":", 1)[1]
    assert (change.status, change.error, change.cause) == ("ABORTED", "Operator", "stopped by hand")


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_the_rule_takes_every_end_without_finish(status):
    event = copy.deepcopy(SAMPLE)
    event["detail"]["status"] = status
    assert _rule().matches_event(event)


@pytest.mark.parametrize(
    "change",
    [
        {"status": "SUCCEEDED"},  # Finish ran, or the run went on in a fresh execution
        {"status": "RUNNING"},
        {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:stepgraph-delay"},
    ],
)
def test_the_rule_leaves_every_other_change(change):
    event = copy.deepcopy(SAMPLE)
    event["detail"].update(change)
    assert not _rule().matches_event(event)


def test_the_default_hand_over_leaves_room_for_retries_below_the_history_cap():
    default = int(load_template(ROOT / "template.yaml")["Parameters"]["HandoverAfter"]["Default"])
    assert default == Settings().handover_after
    # Each failed Lambda attempt adds 3 history events: room for more than one per Step.
    assert history_bound(default) + 3 * default < 25_000
