"""park: the run stopped on an interrupt; store the task token with the thread and free it."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph import tracing
from stepgraph.engine import PARK_TRANSITIONS, billed_invocation, current_context, park_run
from stepgraph.models import ParkEvent

logger = Logger()


@logger.inject_lambda_context
@tracing.flushed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    park = ParkEvent.model_validate(event)
    ctx = current_context()
    with billed_invocation(ctx, "park", context) as bill:
        bill.charge(park.thread_id, park.run_id)
        bill.transitions(PARK_TRANSITIONS)
        park_run(ctx, park.run_id, park.thread_id, park.task_token)
    return {"parked": park.run_id}
