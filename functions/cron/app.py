"""cron: the EventBridge Scheduler target of every cron; a fire creates the cron's run (once per
fire time, however often it is delivered) and arms the next fire."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph.engine import billed_invocation, current_context, fire_cron
from stepgraph.models import CronFireEvent

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    fire = CronFireEvent.model_validate(event)
    ctx = current_context()
    with billed_invocation(ctx, "cron", context) as bill:
        bill.scheduled()
        fired = fire_cron(ctx, fire.cron_id, fire.fire_at)
        if "run_id" in fired and "thread_id" in fired and "skipped" not in fired:
            bill.charge(fired["thread_id"], fired["run_id"])  # a duplicate delivery is its own cost, on no run
        return fired
