"""dispatch: SQS FIFO consumer. Each message is a thread's doorbell; admit that thread's next run."""

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from opentelemetry.trace import SpanKind
from stepgraph import tracing
from stepgraph.engine import Bill, admit_next_run, billed_invocation, current_context

logger = Logger()


def admit(record: SQSRecord, bill: Bill) -> None:
    thread_id = json.loads(record.body)["thread_id"]
    ringer = tracing.from_message_attributes(record.raw_event.get("messageAttributes"))
    with tracing.span("dispatch", parent=ringer, kind=SpanKind.CONSUMER, attributes={"thread_id": thread_id}):
        run_id = admit_next_run(current_context(), thread_id)
    if run_id is not None:
        bill.charge(thread_id, run_id)


@logger.inject_lambda_context
@tracing.flushed
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # One processor per batch (it keeps the batch's results); a failed doorbell holds back only
    # its own thread's later messages, not other threads'.
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    with billed_invocation(current_context(), "dispatch", context) as bill:
        return process_partial_response(
            event=event, record_handler=lambda record: admit(record, bill), processor=processor, context=context
        )
