"""CPU cost of one emulated AWS call (boto3 -> botocore -> moto -> back) in the local runtime.

    python benchmarks/aws_call_cost.py [--calls 300] [--repeats 5] [--without all|NAME,NAME...]

Prints, per operation, the best of `repeats` means over `calls` calls, in ms per call (the best,
not the median: on a shared machine the slower samples measure the neighbours).
`--without` leaves the emulator's speed-ups out (`all`, or some of `emulator.speed_ups()`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepgraph_local import emulator
from stepgraph_local.aws import LocalAWS

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def _per_call_ms(call: Callable[[int], Any], calls: int, repeats: int) -> float:
    for i in range(min(calls, 50)):  # warm-up: first-call caches, moto's lazy imports
        call(i)
    best = float("inf")
    for r in range(repeats):
        base = (r + 1) * calls
        start = time.perf_counter()
        for i in range(base, base + calls):
            call(i)
        best = min(best, (time.perf_counter() - start) / calls * 1000)
    return best


def measure(calls: int, repeats: int, without: list[str]) -> dict[str, float]:
    aws = LocalAWS(TEMPLATE, handlers={"StepFunction": lambda event, context: {"ok": True}}).start()
    emulator.uninstall()  # the hook's registrations stay
    emulator.install(without=without)
    try:
        ddb, lam = aws.client("dynamodb"), aws.client("lambda")
        sqs, s3 = aws.client("sqs"), aws.client("s3")
        threads, checkpoints = aws.resources["ThreadsTable"], aws.resources["CheckpointsTable"]
        bucket, queue = aws.resources["SpillBucket"], aws.queue_urls["RunQueue"]
        for key in ("t", "u", "c"):
            ddb.put_item(TableName=threads, Item={"thread_id": {"S": key}, "v": {"S": "y" * 200}})
        for n in range(20):
            ddb.put_item(
                TableName=checkpoints,
                Item={
                    "pk": {"S": "p"},
                    "sk": {"S": f"{n:04}"},
                    "n": {"N": str(n)},
                    "b": {"B": b"x" * 64},
                },
            )
        s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1024)

        def transact(i: int) -> None:
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": threads, "Item": {"thread_id": {"S": f"a{i}"}, "v": {"N": "1"}}}},
                    {
                        "Update": {
                            "TableName": threads,
                            "Key": {"thread_id": {"S": "u"}},
                            "UpdateExpression": "SET w = :w",
                            "ExpressionAttributeValues": {":w": {"N": str(i)}},
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": threads,
                            "Key": {"thread_id": {"S": "c"}},
                            "ConditionExpression": "attribute_exists(thread_id)",
                        }
                    },
                ]
            )

        def receive_delete(i: int) -> None:
            sqs.send_message(QueueUrl=queue, MessageBody="m", MessageGroupId="g", MessageDeduplicationId=str(i))
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)
            sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": "0", "ReceiptHandle": m["ReceiptHandle"]} for m in got.get("Messages", [])],
            )

        operations: dict[str, Callable[[int], Any]] = {
            "GetItem": lambda i: ddb.get_item(TableName=threads, Key={"thread_id": {"S": "t"}}, ConsistentRead=True),
            "PutItem": lambda i: ddb.put_item(
                TableName=threads, Item={"thread_id": {"S": f"p{i}"}, "v": {"S": "y" * 200}, "n": {"N": "3"}}
            ),
            "TransactWriteItems(3)": transact,
            "Query(20 items)": lambda i: ddb.query(
                TableName=checkpoints,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "p"}},
            ),
            "UpdateItem": lambda i: ddb.update_item(
                TableName=threads,
                Key={"thread_id": {"S": "t"}},
                UpdateExpression="SET c = :c",
                ExpressionAttributeValues={":c": {"N": str(i)}},
                ReturnValues="ALL_NEW",
            ),
            "Lambda Invoke": lambda i: lam.invoke(FunctionName="StepFunction", Payload=b"{}")["Payload"].read(),
            "SQS send+receive+delete": receive_delete,
            "S3 PutObject": lambda i: s3.put_object(Bucket=bucket, Key=f"k{i % 10}", Body=b"x" * 1024),
            "S3 GetObject": lambda i: s3.get_object(Bucket=bucket, Key="k")["Body"].read(),
        }
        return {name: round(_per_call_ms(call, calls, repeats), 3) for name, call in operations.items()}
    finally:
        aws.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--without", default="", help="speed-ups to leave out: all, or names separated by commas")
    args = parser.parse_args()
    without = list(emulator.speed_ups()) if args.without == "all" else [n for n in args.without.split(",") if n]
    print(json.dumps(measure(args.calls, args.repeats, without), indent=2))


if __name__ == "__main__":
    main()
