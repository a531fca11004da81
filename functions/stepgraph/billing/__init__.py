"""What a run costs on AWS: `meter` counts the units stepgraph's own AWS calls use, in the code
that makes them; `pricing` turns units into dollars with a dated price table per region."""

from stepgraph.billing.meter import (
    API_REQUESTS,
    COST_KEY,
    LAMBDA_GB_SECONDS,
    LAMBDA_INVOCATIONS,
    READ_UNITS,
    S3_GETS,
    S3_PUTS,
    SCHEDULER_INVOCATIONS,
    SQS_REQUESTS,
    TRANSITIONS,
    WRITE_UNITS,
    Usage,
    current_usage,
    instrument,
    item_size,
    metering,
)
from stepgraph.billing.pricing import PriceTable, UnknownRegion, price_table

__all__ = [
    "API_REQUESTS",
    "COST_KEY",
    "LAMBDA_GB_SECONDS",
    "LAMBDA_INVOCATIONS",
    "READ_UNITS",
    "S3_GETS",
    "S3_PUTS",
    "SCHEDULER_INVOCATIONS",
    "SQS_REQUESTS",
    "TRANSITIONS",
    "WRITE_UNITS",
    "PriceTable",
    "UnknownRegion",
    "Usage",
    "current_usage",
    "instrument",
    "item_size",
    "metering",
    "price_table",
]
