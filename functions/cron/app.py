"""cron: the EventBridge Scheduler target of every cron; a fire creates the cron's run (once per
fire time, however often it is delivered) and arms the next fire."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph.engine import current_context, fire_cron
from stepgraph.models import CronFireEvent

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    fire = CronFireEvent.model_validate(event)
    return fire_cron(current_context(), fire.cron_id, fire.fire_at)
