"""The emulator's speed-ups change nothing a caller can see: every response is compared, byte for
byte, with what moto answers without them; and the emulator refuses a moto it was not written for."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core import responses as moto_responses
from moto.core import serialize
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from stepgraph_local import LocalAWS, emulator
from stepgraph_local.emulator import _core, _dynamodb

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
BLOB = bytes(range(256))


@pytest.fixture
def aws() -> Iterator[LocalAWS]:
    local = LocalAWS(TEMPLATE, handlers={"StepFunction": lambda event, context: {"echo": event}}).start()
    yield local
    local.stop()


@contextmanager
def without_speed_ups() -> Iterator[None]:
    emulator.uninstall()
    emulator.install(without=emulator.speed_ups())
    try:
        yield
    finally:
        emulator.uninstall()
        emulator.install()


class SerializerCheck:
    """Serialises every response twice: with moto's own member lookups, then the cached ones."""

    def __init__(self) -> None:
        self.compared: Counter[str] = Counter()
        self.mismatches: list[tuple[str, Any, Any]] = []
        self.bodies: dict[str, Any] = {}  # operation -> a response (an error one if any)
        self._serialized = moto_responses.BaseResponse.serialized

    def __enter__(self) -> SerializerCheck:
        check, original = self, self._serialized

        def serialized(response: Any, action_result: Any) -> Any:
            operation = f"{response.service_name}.{response._get_action()}"
            # Serialising reads the result, except a paginated one, which it pages in place.
            paged = isinstance(action_result, moto_responses.PaginatedResult)
            reference_result = copy.deepcopy(action_result) if paged else action_result
            fast_get_value = serialize.ResponseSerializer.get_value
            serialize.ResponseSerializer.get_value = _core._originals["get_value"]
            try:
                reference = original(response, reference_result)
            finally:
                serialize.ResponseSerializer.get_value = fast_get_value
            fast = original(response, action_result)
            check.compared[operation] += 1
            if "__type" in str(fast[2]) or operation not in check.bodies:
                check.bodies[operation] = fast
            if fast != reference:
                check.mismatches.append((operation, reference, fast))
            return fast

        moto_responses.BaseResponse.serialized = serialized  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        moto_responses.BaseResponse.serialized = self._serialized  # type: ignore[method-assign]


def _item(n: int) -> dict[str, Any]:
    return {
        "pk": {"S": "p"},
        "sk": {"S": f"{n:04}"},
        "s": {"S": 'text \u00e9\u20ac "quoted" <RequestId>x</RequestId>'},
        "empty": {"S": ""},
        "n": {"N": str(n * 1.5)},
        "big": {"N": "123456789012345678901234567890"},
        "b": {"B": BLOB},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"\x00", BLOB[:10]]},
        "m": {"M": {"inner": {"M": {"l": {"L": [{"N": "1"}, {"S": "x"}, {"B": b"\xff"}, {"NULL": True}]}}}}},
        "l": {"L": [{"M": {"k": {"BOOL": False}}}, {"L": []}, {"M": {}}]},
        "null": {"NULL": True},
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
    }


def _dynamodb_traffic(aws: LocalAWS) -> None:
    ddb = aws.client("dynamodb")
    checkpoints, threads = aws.resources["CheckpointsTable"], aws.resources["ThreadsTable"]
    for n in range(12):
        ddb.put_item(TableName=checkpoints, Item=_item(n), ReturnConsumedCapacity="TOTAL")
    ddb.put_item(TableName=threads, Item={"thread_id": {"S": "t"}, "v": {"N": "1"}, "b": {"B": b"b"}})
    ddb.put_item(TableName=threads, Item={"thread_id": {"S": "t"}, "v": {"N": "2"}}, ReturnValues="ALL_OLD")
    key = {"pk": {"S": "p"}, "sk": {"S": "0003"}}
    ddb.get_item(TableName=checkpoints, Key=key, ConsistentRead=True)
    ddb.get_item(TableName=checkpoints, Key={"pk": {"S": "p"}, "sk": {"S": "none"}})
    ddb.get_item(
        TableName=checkpoints, Key=key, ProjectionExpression="#m.inner, bs", ExpressionAttributeNames={"#m": "m"}
    )
    ddb.get_item(TableName=checkpoints, Key=key, ReturnConsumedCapacity="INDEXES")
    for values in ("ALL_NEW", "UPDATED_OLD", "ALL_OLD", "UPDATED_NEW", "NONE"):
        ddb.update_item(
            TableName=checkpoints,
            Key=key,
            ReturnValues=values,
            UpdateExpression="SET #c = if_not_exists(#c, :zero) + :one, l[0].k = :t ADD ns :ns REMOVE yes",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":t": {"BOOL": True},
                ":ns": {"NS": ["7"]},
            },
        )
    ddb.query(TableName=checkpoints, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}})
    ddb.query(
        TableName=checkpoints,
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        Limit=3,
        ScanIndexForward=False,
        ExpressionAttributeValues={":p": {"S": "p"}, ":s": {"S": "00"}},
    )
    ddb.query(
        TableName=checkpoints,
        KeyConditionExpression="pk = :p",
        Select="COUNT",
        ExpressionAttributeValues={":p": {"S": "p"}},
    )
    ddb.query(TableName=checkpoints, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}})
    ddb.scan(TableName=threads)
    ddb.batch_get_item(RequestItems={checkpoints: {"Keys": [key, {"pk": {"S": "p"}, "sk": {"S": "0004"}}]}})
    ddb.batch_write_item(RequestItems={threads: [{"PutRequest": {"Item": {"thread_id": {"S": "w"}}}}]})
    ddb.transact_get_items(TransactItems=[{"Get": {"TableName": checkpoints, "Key": key}}])
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": threads, "Item": {"thread_id": {"S": "x"}, "b": {"B": BLOB}}}},
            {
                "Update": {
                    "TableName": checkpoints,
                    "Key": key,
                    "UpdateExpression": "SET z = :z",
                    "ExpressionAttributeValues": {":z": {"S": "z"}},
                }
            },
            {
                "ConditionCheck": {
                    "TableName": threads,
                    "Key": {"thread_id": {"S": "t"}},
                    "ConditionExpression": "attribute_exists(thread_id)",
                }
            },
        ]
    )
    failures = [
        lambda: ddb.transact_write_items(
            TransactItems=[  # cancellation reasons, one with the old item
                {
                    "Put": {
                        "TableName": threads,
                        "Item": {"thread_id": {"S": "x"}},
                        "ConditionExpression": "attribute_not_exists(thread_id)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {"Delete": {"TableName": checkpoints, "Key": key}},
                {
                    "ConditionCheck": {
                        "TableName": threads,
                        "Key": {"thread_id": {"S": "t"}},
                        "ConditionExpression": "attribute_not_exists(thread_id)",
                    }
                },
            ]
        ),
        lambda: ddb.put_item(
            TableName=checkpoints,
            Item=_item(3),
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        lambda: ddb.get_item(TableName="NoSuchTable", Key=key),
        lambda: ddb.update_item(TableName=checkpoints, Key=key, UpdateExpression="SET"),
        lambda: ddb.query(TableName=checkpoints, KeyConditionExpression="pk = :p"),
    ]
    for failure in failures:
        with pytest.raises(ClientError):
            failure()
    ddb.delete_item(TableName=checkpoints, Key=key, ReturnValues="ALL_OLD")
    ddb.describe_table(TableName=aws.resources["RunsTable"])
    ddb.describe_time_to_live(TableName=aws.resources["EventsTable"])
    ddb.list_tables()


def _other_traffic(aws: LocalAWS) -> None:
    sqs, lam, sfn = aws.client("sqs"), aws.client("lambda"), aws.client("stepfunctions")
    s3, iam = aws.client("s3"), aws.client("iam")
    queue = aws.queue_urls["RunQueue"]
    sqs.send_message(
        QueueUrl=queue,
        MessageBody='{"a": "<b>\\r"}',
        MessageGroupId="g",
        MessageDeduplicationId="1",
        MessageAttributes={"k": {"DataType": "Binary", "BinaryValue": BLOB}},
    )
    got = sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
    )
    sqs.delete_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got["Messages"])]
        + [{"Id": "bad", "ReceiptHandle": "nope"}],
    )
    sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])
    sqs.list_queues()
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName="no-such-queue")
    lam.invoke(FunctionName="StepFunction", Payload=json.dumps({"x": 1}).encode())
    lam.get_function(FunctionName="StepFunction")
    lam.list_functions()
    sfn.describe_state_machine(stateMachineArn=aws.state_machine_arn)
    sfn.list_state_machines()
    sfn.list_executions(stateMachineArn=aws.state_machine_arn)
    with pytest.raises(ClientError):
        sfn.describe_execution(executionArn=aws.state_machine_arn.replace(":stateMachine:", ":execution:") + ":none")
    bucket = aws.resources["SpillBucket"]
    s3.put_object(Bucket=bucket, Key="k/a b", Body=BLOB, Metadata={"my_key": "v"})
    s3.get_object(Bucket=bucket, Key="k/a b")["Body"].read()
    s3.list_objects_v2(Bucket=bucket, Prefix="k/")
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="missing")
    iam.list_roles()


def test_serialised_responses_are_byte_identical_to_moto(aws: LocalAWS) -> None:
    with SerializerCheck() as check:
        _dynamodb_traffic(aws)
        _other_traffic(aws)
    assert not check.mismatches, check.mismatches[:3]
    dynamodb = {op for op in check.compared if op.startswith("dynamodb.")}
    assert {
        "dynamodb.PutItem",
        "dynamodb.GetItem",
        "dynamodb.UpdateItem",
        "dynamodb.Query",
        "dynamodb.Scan",
        "dynamodb.BatchGetItem",
        "dynamodb.TransactGetItems",
        "dynamodb.TransactWriteItems",
        "dynamodb.DeleteItem",
        "dynamodb.DescribeTable",
    } <= dynamodb
    # DynamoDB's errors (cancellation reasons included) are JSON moto builds itself; SQS's go through the serializer.
    assert "__type" in check.bodies["sqs.GetQueueUrl"][2]
    assert sum(check.compared.values()) >= 45
    assert _core._possible_keys  # the cached lookups did serve these responses


def test_action_lookup_matches_inspect_getmembers() -> None:
    original = _core._originals.get("method_names_from_class") or moto_responses.method_names_from_class

    class Patched(moto_responses.BaseResponse):
        def get_item(self) -> None: ...

        put_item = staticmethod(lambda: None)
        query = classmethod(lambda cls: None)
        scan = property(lambda self: None)
        call_action = None  # a method replaced by something that is not a function

    from moto.awslambda.responses import LambdaResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.s3.responses import S3Response
    from moto.sqs.responses import SQSResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    for cls in (DynamoHandler, SQSResponse, LambdaResponse, S3Response, StepFunctionResponse, Patched):
        names = set(original(cls))
        fast = _core._MethodNames(cls)
        for name in [*dir(cls), "no_such_action", "", "__init__", "__class__", "Meta"]:
            assert (name in fast) == (name in names), (cls, name)


def _tree(node: Any, parent: Any = None) -> Any:
    """A parse tree as nested data, checking every node's parent link on the way."""
    if not hasattr(node, "children"):
        return node
    assert node.parent is parent
    state = {k: v for k, v in vars(node).items() if k not in ("children", "parent")}
    children = None if node.children is None else [_tree(child, node) for child in node.children]
    return type(node), state, children


@pytest.mark.parametrize(
    "expression",
    [
        "SET a = :a",
        "SET active_run_id = :r, #s = :busy DELETE pending :e REMOVE task_token, parked_run_id",
        "SET #s = :running, updated_at = :u REMOVE pending_key",
        "SET tail = :r, #s = :busy ADD pending :e",
        "SET l[1] = list_append(l, :x), m.#n.o = if_not_exists(m.#n.o, :z) + :one REMOVE l[3], l[0]",
        "SET a = b - :c ADD s :s DELETE t :t",
    ],
)
def test_update_expression_trees_match_a_fresh_parse(aws: LocalAWS, expression: str) -> None:
    original = _dynamodb._originals["make_update_expression"].__func__
    expected = _tree(original(UpdateExpressionParser, expression))
    first, second = UpdateExpressionParser.make(expression), UpdateExpressionParser.make(expression)
    assert _tree(first) == expected and _tree(second) == expected
    assert first is not second and first.children[0] is not second.children[0]  # callers may mutate theirs


@pytest.mark.parametrize("expression", ["SET", "SET a = ", "REMOVE", "SET a = :a REMOVE", "DROP a"])
def test_invalid_update_expressions_raise_as_before(aws: LocalAWS, expression: str) -> None:
    original = _dynamodb._originals["make_update_expression"].__func__
    with pytest.raises(Exception) as expected:
        original(UpdateExpressionParser, expression)
    for _ in range(2):
        with pytest.raises(type(expected.value)) as got:
            UpdateExpressionParser.make(expression)
        assert str(got.value) == str(expected.value)


@pytest.mark.parametrize(
    "expression",
    [
        "attribute_not_exists(thread_id)",
        "attribute_not_exists(active_run_id) AND contains(pending, :es) AND parked_run_id = :p",
        "#s IN (:e0, :e1, :e2)",
        "(a.b[1] <> :x OR NOT begins_with(#n, :p)) AND size(l) BETWEEN :lo AND :hi",
        "a=:a",
    ],
)
def test_condition_expression_tokens_match_the_lexer(aws: LocalAWS, expression: str) -> None:
    lex = _dynamodb._originals["lex_condition_expression"]
    expected = lex(ConditionExpressionParser(expression, {}, {}))
    first = ConditionExpressionParser(expression, {}, {})._lex_condition_expression()
    second = ConditionExpressionParser(expression, {}, {})._lex_condition_expression()
    assert first == expected and second == expected
    assert all(a.children is not b.children for a, b in zip(first, second))  # nothing shared between callers


def test_invalid_condition_expressions_raise_as_before(aws: LocalAWS) -> None:
    lex = _dynamodb._originals["lex_condition_expression"]
    with pytest.raises(ValueError) as expected:
        lex(ConditionExpressionParser("a = :a AND b ! :b", {}, {}))
    for _ in range(2):
        with pytest.raises(ValueError) as got:
            ConditionExpressionParser("a = :a AND b ! :b", {}, {})._lex_condition_expression()
        assert str(got.value) == str(expected.value)


_UPDATES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "SET #c = if_not_exists(#c, :zero) + :one, l = list_append(l, :l) REMOVE yes, #e",
        {"#c": "count", "#e": "empty"},
        {":zero": {"N": "0"}, ":one": {"N": "1"}, ":l": {"L": [{"S": "new"}]}},
    ),
    (
        "SET m.#i.l[1] = :x, m.#n = :x, n = n - :one ADD ss :ss, ns :ns DELETE bs :bs",
        {"#n": "added", "#i": "inner"},
        {
            ":x": {"S": "x"},
            ":one": {"N": "1"},
            ":ss": {"SS": ["c", "a"]},
            ":ns": {"NS": ["9"]},
            ":bs": {"BS": [b"\x00"]},
        },
    ),
    ("SET a = :m, b = :e REMOVE l[0], l[2]", {}, {":m": {"M": {"k": {"NS": ["1"]}}}, ":e": {"S": ""}}),
    ("SET a = :missing", {}, {":other": {"S": "x"}}),  # a value not defined
    ("SET a = list_append(nothing, :l)", {}, {":l": {"L": []}}),  # a path that does not exist
    ("ADD s :one", {}, {":one": {"N": "1"}}),  # a type mismatch
    ("SET sk = :x", {}, {":x": {"S": "x"}}),  # a key attribute
    ("SET a = :x, a = :x", {}, {":x": {"S": "x"}}),  # overlapping paths
    ("SET #u = :x", {"#v": "v"}, {":x": {"S": "x"}}),  # a name not defined
    ("SET n = n + :s", {}, {":s": {"S": "x"}}),  # arithmetic on a string
]


def _outcome(call: Any, **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"], exc.response["Error"]["Message"]


def _apply_updates(aws: LocalAWS, sk: str) -> list[Any]:
    ddb, table = aws.client("dynamodb"), aws.resources["CheckpointsTable"]
    outcomes = []
    for n, (expression, names, values) in enumerate(_UPDATES):
        key = {"pk": {"S": "updates"}, "sk": {"S": f"{sk}{n:02}"}}
        ddb.put_item(TableName=table, Item={**_item(n), **key, "s": {"S": "text"}})  # no <RequestId> to rewrite
        kwargs: dict[str, Any] = {"UpdateExpression": expression}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        response = _outcome(ddb.update_item, TableName=table, Key=key, ReturnValues="ALL_NEW", **kwargs)
        if isinstance(response, dict):
            response = response["Attributes"]
        stored = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        for item in (response, stored):
            if isinstance(item, dict):
                item.pop("sk")
        outcomes.append((expression, response, stored))
        # Inside a transaction too, on an item that does not exist yet (validated twice by moto).
        fresh = {"pk": {"S": "updates"}, "sk": {"S": f"{sk}{n:02}-new"}}
        update = {"TableName": table, "Key": fresh, **kwargs}
        failure = _outcome(ddb.transact_write_items, TransactItems=[{"Update": update}])
        created = ddb.get_item(TableName=table, Key=fresh, ConsistentRead=True).get("Item", {})
        created.pop("sk", None)
        outcomes.append((failure if isinstance(failure, tuple) else "committed", created))
    return outcomes


def test_updates_apply_as_moto_applies_them(aws: LocalAWS) -> None:
    fast = _apply_updates(aws, "fast")
    with without_speed_ups():
        reference = _apply_updates(aws, "ref")
    assert fast == reference
    failed = [o for o in fast[::2] if isinstance(o[1], tuple)]
    assert len(failed) == 7, failed  # the invalid ones fail, with moto's own messages
    # On a new item most of them fail (the paths they read do not exist yet); ADD creates it.
    assert [o[0] if isinstance(o[0], str) else o[0][0] for o in fast[1::2]].count("committed") == 1


def test_another_moto_is_refused_and_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto
    from moto.awslambda.models import LambdaFunction
    from moto.dynamodb.responses import DynamoHandler
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    def patched() -> list[Any]:  # one of each patch module's
        return [
            LambdaFunction.invoke,
            DynamoHandler.call_action,
            AmazonStateLanguageParser.__dict__["parse"],
            serialize.ResponseSerializer.get_value,
        ]

    emulator.uninstall()
    before = patched()
    monkeypatch.setattr(moto, "__version__", "0.0.0")
    with pytest.raises(RuntimeError, match=re.escape("but moto 0.0.0 is installed")):
        emulator.install()
    assert patched() == before


def _moto_attributes() -> list[Any]:
    """What every patch replaces, as moto's classes and modules hold it."""
    from moto.awslambda.models import LambdaFunction
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    owners = [
        (LambdaFunction, "invoke"),
        (DynamoHandler, "call_action"),
        (DynamoDBBackend, "transact_write_items"),
        (Table, "query"),
        (Table, "all_items"),
        (UpdateExpressionParser, "make"),
        (ConditionExpressionParser, "_lex_condition_expression"),
        (AmazonStateLanguageParser, "parse"),
        (json_path, "parse"),
        (boto_client, "boto_client_for"),
        (BaseExecutionWorkerCommunication, "terminated"),
        (Environment, "set_error"),
        (serialize.ResponseSerializer, "get_value"),
        (moto_responses, "method_names_from_class"),
    ]
    return [(owner, name, vars(owner).get(name)) for owner, name in owners]


def test_uninstall_gives_moto_back_its_own() -> None:
    emulator.uninstall()
    own = _moto_attributes()
    emulator.install()
    assert [attribute for *_, attribute in _moto_attributes()] != [attribute for *_, attribute in own]
    emulator.uninstall()
    assert _moto_attributes() == own


def test_a_stopped_execution_keeps_its_stop_when_its_last_state_fails() -> None:
    # What moto's Environment does when a StopExecution lands as a Task state begins: set_stop,
    # then that state's failure calls set_error. AWS ends a stopped execution ABORTED.
    import datetime
    import threading

    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramRunning, ProgramStopped

    def environment() -> Environment:
        env = Environment.__new__(Environment)  # only what the state changes touch
        env._state_mutex, env._frames = threading.RLock(), []
        env._program_state, env.program_state_event = ProgramRunning(), threading.Event()
        return env

    emulator.install()
    try:
        stopped, failed = environment(), environment()
        stopped.set_stop(stop_date=datetime.datetime.now(datetime.UTC), cause=None, error=None)
        stopped.set_error({"error": "States.Runtime", "cause": "'dict' object has no attribute 'region'"})
        failed.set_error({"error": "States.Runtime", "cause": "a real failure"})
        assert isinstance(stopped.program_state(), ProgramStopped)
        assert isinstance(failed.program_state(), ProgramError)
    finally:
        emulator.uninstall()


def test_speed_ups_can_be_left_out_and_only_they() -> None:
    emulator.uninstall()
    get_value, call_action = serialize.ResponseSerializer.get_value, _dynamodb.DynamoHandler.call_action
    try:
        emulator.install(without=["serializer"])
        assert serialize.ResponseSerializer.get_value is get_value  # left out
        assert _dynamodb.DynamoHandler.call_action is not call_action  # the lock is not optional
        with pytest.raises(ValueError, match="not speed-ups"):
            emulator.install(without=["lock"])
    finally:
        emulator.uninstall()
