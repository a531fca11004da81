"""finish: final run status, free the thread lease, ring the doorbell for the next pending run."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph import tracing
from stepgraph.engine import billed_invocation, current_context, finish_run, finish_transitions
from stepgraph.models import FinishEvent

logger = Logger()


@logger.inject_lambda_context
@tracing.flushed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    finish = FinishEvent.model_validate(event)
    ctx = current_context()
    with billed_invocation(ctx, "finish", context) as bill:
        bill.charge(finish.thread_id, finish.run_id)
        bill.transitions(finish_transitions(finish.outcome))
        return finish_run(ctx, finish.run_id, finish.thread_id, finish.outcome, finish.error, finish.execution)
