"""step: runs the run's next supersteps and returns continue | interrupted | done | error | handover."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph import tracing
from stepgraph.engine import billed_invocation, current_context, run_supersteps, step_transitions
from stepgraph.models import StepEvent

logger = Logger()


@logger.inject_lambda_context
@tracing.flushed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = StepEvent.model_validate(event)
    ctx = current_context()
    with billed_invocation(ctx, "step", context) as bill:
        bill.charge(step.thread_id, step.run_id)
        result = run_supersteps(
            ctx,
            step.run_id,
            step.thread_id,
            remaining_ms=context.get_remaining_time_in_millis,
            execution=step.execution,
            count=step.count,
        )
        bill.transitions(step_transitions(result.status))
    return result.to_payload()
