"""sweeper: on a schedule, ring the doorbell of each thread whose queued run lost its own (the
send failed, or the message went to the dead-letter queue) and that nothing holds."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph.engine import current_context, ring_lost_doorbells

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rung = ring_lost_doorbells(current_context())
    if rung:
        logger.info("rang lost doorbells", extra={"threads": rung})
    return {"rung": len(rung)}
