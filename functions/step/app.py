"""step: runs the run's next supersteps and returns continue | interrupted | done | error | handover."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph import tracing
from stepgraph.engine import current_context, run_supersteps
from stepgraph.models import StepEvent

logger = Logger()


@logger.inject_lambda_context
@tracing.flushed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = StepEvent.model_validate(event)
    result = run_supersteps(
        current_context(),
        step.run_id,
        step.thread_id,
        remaining_ms=context.get_remaining_time_in_millis,
        execution=step.execution,
        count=step.count,
    )
    return result.to_payload()
