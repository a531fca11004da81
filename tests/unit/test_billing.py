"""The meter counts what stepgraph's AWS calls bill, and the price table prices it."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from stepgraph.billing import item_size, metering, price_table
from stepgraph.billing.meter import instrument

BIG = {"pk": {"S": "p"}, "v": {"S": "x" * 3000}}  # 3,004 bytes: 3 write units, 1 read unit


def _dynamodb(trust: bool):
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    instrument(client, trust_reported_capacity=trust)
    return client, Stubber(client)


def test_item_size_follows_dynamodb_rules():
    assert item_size({"pk": {"S": "abc"}}) == 5
    assert item_size({"n": {"N": "12345"}}) == 1 + 4
    assert item_size({"m": {"M": {"a": {"BOOL": True}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size(BIG) == 3004


def test_units_are_estimated_from_item_sizes_without_a_trusted_answer():
    client, stub = _dynamodb(trust=False)
    put = {"TableName": "t", "Item": BIG, "ReturnConsumedCapacity": "TOTAL"}  # asked for on every call
    stub.add_response("put_item", {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}}, put)
    stub.add_response(
        "get_item",
        {"Item": BIG},
        {"TableName": "t", "Key": {"pk": {"S": "p"}}, "ConsistentRead": True, "ReturnConsumedCapacity": "TOTAL"},
    )
    stub.add_response(
        "get_item", {"Item": BIG}, {"TableName": "t", "Key": {"pk": {"S": "p"}}, "ReturnConsumedCapacity": "TOTAL"}
    )
    actions = [
        {"Put": {"TableName": "t", "Item": BIG}},
        {
            "ConditionCheck": {
                "TableName": "t",
                "Key": {"pk": {"S": "q"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
    ]
    stub.add_response("transact_write_items", {}, {"TransactItems": actions, "ReturnConsumedCapacity": "TOTAL"})
    with stub:
        client.put_item(TableName="t", Item=BIG)  # outside an invocation: counted nowhere
        with metering() as usage:
            client.get_item(TableName="t", Key={"pk": {"S": "p"}}, ConsistentRead=True)
            client.get_item(TableName="t", Key={"pk": {"S": "p"}})
            client.transact_write_items(TransactItems=actions)
    assert usage.counts() == {"dynamodb.read_units": 1.5, "dynamodb.write_units": 2 * 3 + 2 * 1}


def test_aws_reported_capacity_is_used_when_trusted():
    client, stub = _dynamodb(trust=True)
    stub.add_response(
        "put_item",
        {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 7.0}},
        {"TableName": "t", "Item": BIG, "ReturnConsumedCapacity": "TOTAL"},
    )
    stub.add_client_error("put_item", "ConditionalCheckFailedException", expected_params=None)
    with stub, metering() as usage:
        client.put_item(TableName="t", Item=BIG)
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(TableName="t", Item=BIG, ConditionExpression="attribute_not_exists(pk)")
    assert usage.counts() == {"dynamodb.write_units": 7 + 3}  # a failed write is billed too: estimated


def test_price_table_is_dated_sourced_and_prices_each_key():
    prices = price_table("us-east-1")
    assert prices.as_of and all(price["source"].startswith("https://") for price in prices.prices.values())
    usage = {"lambda.step.invocations": 1e6, "lambda.step.gb_seconds": 1, "stepfunctions.transitions": 1000}
    assert prices.line_items(usage) == pytest.approx(
        {"lambda.step.invocations": 0.20, "lambda.step.gb_seconds": 0.0000133334, "stepfunctions.transitions": 0.025}
    )
