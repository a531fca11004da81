"""reaper: a run's execution ended without Finish (EventBridge: FAILED, TIMED_OUT, ABORTED); end
the run it carried `error`, free its thread and ring for the next queued run."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph.engine import billed_invocation, current_context, reap_execution
from stepgraph.models import ExecutionStatusChange

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = ExecutionStatusChange.model_validate(event).detail
    ctx = current_context()
    with billed_invocation(ctx, "reaper", context) as bill:
        bill.charge(change.input.thread_id, change.input.run_id)
        reaped = reap_execution(
            ctx,
            change.input.thread_id,
            change.execution_arn,
            change.status,
            error=change.error,
            cause=change.cause,
        )
    return {"reaped": reaped}
