"""The state machine and the code speak one vocabulary: every step status the ASL branches on
or sets is a StepOutcome, so renaming one on either side fails here, not on AWS."""

import json
from pathlib import Path

from stepgraph.vocabulary import StepOutcome

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "run.asl.json"


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_every_step_status_in_the_state_machine_is_a_step_outcome():
    machine = json.loads(ASL.read_text())
    branched = {n["StringEquals"] for n in _walk(machine) if n.get("Variable") == "$.step.status"}
    set_by_states = {n["step"]["status"] for n in _walk(machine) if isinstance(n.get("step"), dict)}
    set_by_states |= {n["outcome"] for n in _walk(machine) if isinstance(n.get("outcome"), str)}
    assert branched == {StepOutcome.CONTINUE, StepOutcome.INTERRUPTED, StepOutcome.HANDOVER}
    assert set_by_states and set_by_states <= set(StepOutcome)
