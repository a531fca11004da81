"""webhook: SQS consumer. Each message is one run's webhook delivery: post it, signed; a failed
attempt comes back after its backoff, a hopeless one goes to the dead-letter queue."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from stepgraph import tracing
from stepgraph.engine import current_context, deliver_webhook
from stepgraph.vocabulary import WebhookDelivery

logger = Logger()


class DeliveryDeferred(Exception):
    """Not delivered yet: the message stays on the queue and comes back after its backoff."""


def record_handler(record: SQSRecord) -> None:
    ctx = current_context()
    outcome = deliver_webhook(
        ctx,
        ctx.graphs.webhooks,
        record.body,
        receipt_handle=record.receipt_handle,
        receive_count=int(record.attributes.approximate_receive_count),
        sent_at_ms=int(record.attributes.sent_timestamp),
    )
    if outcome == WebhookDelivery.RETRY:
        raise DeliveryDeferred(record.message_id)


@logger.inject_lambda_context
@tracing.flushed
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # One processor per batch (it keeps the batch's results): a deferred delivery is reported
    # failed, so SQS keeps it, and the others are deleted.
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
