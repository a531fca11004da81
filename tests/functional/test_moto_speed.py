"""The local runtime's speed-ups to moto, botocore and werkzeug (`moto_speed`) change nothing a caller
can see: every response is compared, byte for byte, with what moto answers without them."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.context import start_as_current_context
from botocore.exceptions import ClientError
from botocore.useragent import register_feature_id
from moto.core import base_backend, serialize
from moto.core import responses as moto_responses
from moto.core.request import Request
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from stepgraph_local import LocalAWS, emulator
from stepgraph_local.emulator import _speed as moto_speed

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
BLOB = bytes(range(256))


@pytest.fixture
def aws() -> Iterator[LocalAWS]:
    local = LocalAWS(TEMPLATE, handlers={"StepFunction": lambda event, context: {"echo": event}}).start()
    yield local
    local.stop()


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
            serialize.ResponseSerializer.get_value = moto_speed._originals["get_value"]
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
    assert moto_speed._possible_keys  # the cached lookups did serve these responses


def test_action_lookup_matches_inspect_getmembers() -> None:
    original = moto_speed._originals.get("method_names_from_class") or moto_responses.method_names_from_class

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
        fast = moto_speed._MethodNames(cls)
        for name in [*dir(cls), "no_such_action", "", "__init__", "__class__", "Meta"]:
            assert (name in fast) == (name in names), (cls, name)


def test_user_agent_matches_botocore(aws: LocalAWS) -> None:
    original = moto_speed._originals["to_string"]
    configs = [
        None,
        Config(user_agent_extra="extra/1", user_agent_appid="my app#1"),
        Config(retries={"mode": "standard"}, user_agent_appid="a"),
        Config(retries={"mode": "adaptive", "max_attempts": 2}),
        Config(user_agent="legacy/1.0", user_agent_extra="x"),
    ]
    for config in configs:
        client = boto3.session.Session().client("dynamodb", region_name="us-east-1", config=config)
        creator = client._user_agent_creator
        assert creator.to_string() == original(creator)
        with start_as_current_context():
            register_feature_id("RETRY_MODE_STANDARD")
            register_feature_id("WAITER")
            assert creator.to_string() == original(creator)
        assert creator.to_string() == original(creator)


def test_backend_url_tables_match_moto(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.backends import get_backend

    original = moto_speed._originals["urls"].fget
    for iso in ("false", "true"):
        monkeypatch.setenv("MOTO_ENABLE_ISO_REGIONS", iso)
        for service in ("dynamodb", "sqs", "lambda", "s3", "stepfunctions", "iam"):
            backends = get_backend(service)["123456789012"]
            backend = backends["us-east-1"] if "us-east-1" in backends else backends["aws"]
            fast = backend.urls
            assert list(fast.items()) == list(original(backend).items())
            fast.clear()  # each caller owns its copy
            assert backend.urls == original(backend)


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
    original = moto_speed._originals["make_update_expression"].__func__
    expected = _tree(original(UpdateExpressionParser, expression))
    first, second = UpdateExpressionParser.make(expression), UpdateExpressionParser.make(expression)
    assert _tree(first) == expected and _tree(second) == expected
    assert first is not second and first.children[0] is not second.children[0]  # callers may mutate theirs


@pytest.mark.parametrize("expression", ["SET", "SET a = ", "REMOVE", "SET a = :a REMOVE", "DROP a"])
def test_invalid_update_expressions_raise_as_before(aws: LocalAWS, expression: str) -> None:
    original = moto_speed._originals["make_update_expression"].__func__
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
    lex = moto_speed._originals["lex_condition_expression"]
    expected = lex(ConditionExpressionParser(expression, {}, {}))
    first = ConditionExpressionParser(expression, {}, {})._lex_condition_expression()
    second = ConditionExpressionParser(expression, {}, {})._lex_condition_expression()
    assert first == expected and second == expected
    assert all(a.children is not b.children for a, b in zip(first, second))  # nothing shared between callers


def test_invalid_condition_expressions_raise_as_before(aws: LocalAWS) -> None:
    lex = moto_speed._originals["lex_condition_expression"]
    with pytest.raises(ValueError) as expected:
        lex(ConditionExpressionParser("a = :a AND b ! :b", {}, {}))
    for _ in range(2):
        with pytest.raises(ValueError) as got:
            ConditionExpressionParser("a = :a AND b ! :b", {}, {})._lex_condition_expression()
        assert str(got.value) == str(expected.value)


def test_camel_case_conversion_matches_moto(aws: LocalAWS) -> None:
    from moto.sqs import models as sqs_models
    from moto.sqs.models import Queue

    original = moto_speed._originals["camelcase_to_underscores"]
    assert sqs_models.camelcase_to_underscores is moto_speed._camelcase_to_underscores
    names = [
        *Queue.BASE_ATTRIBUTES,
        *Queue.FIFO_ATTRIBUTES,
        "TransactWriteItems",
        "GetItem",
        "DBInstanceIdentifier",
        "ABC",
        "aB",
        "a b C",
        "X",
        "",
        "\u00c9t\u00e9Long",
        "V2Thing",
        "listQueues",
        "x_y Z",
    ]
    for name in names * 2:
        assert sqs_models.camelcase_to_underscores(name) == original(name)
    assert sqs_models.camelcase_to_underscores(None) is None


def test_request_environ_unchanged_by_url_caches(aws: LocalAWS) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Meta-My_Key": "v", "Content-Length": "2"}
    urls = [
        "https://dynamodb.us-east-1.amazonaws.com/",
        "https://bucket.s3.amazonaws.com/k/a%20b%2Fc?list-type=2&prefix=k%2F",
        "http://localhost:5000/2015-03-31/functions/f/invocations",
        "https://s3.amazonaws.com/b/\u00e9t\u00e9",
    ]

    def request(url: str) -> tuple[dict[str, Any], str, str]:
        r = Request.from_primitives("POST", url, headers, b"{}")
        environ = {k: v for k, v in r.environ.items() if k not in ("wsgi.input", "wsgi.errors", "werkzeug.request")}
        return environ, r.raw_url, r.url

    fast = [request(url) for url in urls * 2]
    moto_speed.uninstall()
    try:
        reference = [request(url) for url in urls * 2]
    finally:
        moto_speed.install()
    assert fast == reference


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


def _outcome(call: Any) -> Any:
    try:
        return call()
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
        response = _outcome(lambda: ddb.update_item(TableName=table, Key=key, ReturnValues="ALL_NEW", **kwargs))
        if isinstance(response, dict):
            response = response["Attributes"]
        stored = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        for item in (response, stored):
            if isinstance(item, dict):
                item.pop("sk")
        outcomes.append((expression, response, stored))
        # Inside a transaction too, on an item that does not exist yet (validated twice by moto).
        fresh = {"pk": {"S": "updates"}, "sk": {"S": f"{sk}{n:02}-new"}}
        failure = _outcome(
            lambda: ddb.transact_write_items(TransactItems=[{"Update": {"TableName": table, "Key": fresh, **kwargs}}])
        )
        created = ddb.get_item(TableName=table, Key=fresh, ConsistentRead=True).get("Item", {})
        created.pop("sk", None)
        outcomes.append((failure if isinstance(failure, tuple) else "committed", created))
    return outcomes


def test_updates_apply_as_moto_applies_them(aws: LocalAWS) -> None:
    fast = _apply_updates(aws, "fast")
    moto_speed.uninstall()
    try:
        reference = _apply_updates(aws, "ref")
    finally:
        moto_speed.install()
    assert fast == reference
    failed = [o for o in fast[::2] if isinstance(o[1], tuple)]
    assert len(failed) == 7, failed  # the invalid ones fail, with moto's own messages
    # On a new item most of them fail (the paths they read do not exist yet); ADD creates it.
    assert [o[0] if isinstance(o[0], str) else o[0][0] for o in fast[1::2]].count("committed") == 1


def _sets_sorted(value: Any) -> Any:
    """moto's projection returns sets as Python set order; DynamoDB promises no order either."""
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("SS", "NS", "BS") else _sets_sorted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sets_sorted(v) for v in value]
    return value


def _projected_reads(aws: LocalAWS) -> list[Any]:
    ddb, table = aws.client("dynamodb"), aws.resources["CheckpointsTable"]
    for n in range(3):
        # (moto rewrites a <RequestId> in any response body: the default "s" would differ per call)
        ddb.put_item(TableName=table, Item={**_item(n), "pk": {"S": "projections"}, "s": {"S": f"text {n}"}})
    key = {"pk": {"S": "projections"}, "sk": {"S": "0001"}}
    out = []
    for projection, names in [
        ("s, n, ss, ns, bs", {}),
        ("#m, l, null, yes, no, empty", {"#m": "m"}),
        ("b, missing, big", {}),
        ("pk, sk", {}),
        ("m.inner.l[1], l[0]", {}),
        ("sk, sk", {}),
        ("#a", {"#a": "absent"}),
    ]:
        extra: dict[str, Any] = {"ProjectionExpression": projection}
        if names:
            extra["ExpressionAttributeNames"] = names
        out.append(_outcome(lambda: ddb.get_item(TableName=table, Key=key, **extra).get("Item")))
        out.append(
            _outcome(
                lambda: ddb.query(
                    TableName=table,
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "projections"}},
                    **extra,
                )["Items"]
            )
        )
        out.append(_outcome(lambda: ddb.batch_get_item(RequestItems={table: {"Keys": [key], **extra}})["Responses"]))
        out.append(
            _outcome(
                lambda: ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key, **extra}}])[
                    "Responses"
                ]
            )
        )
    return _sets_sorted(out)


def test_projected_reads_match_moto(aws: LocalAWS) -> None:
    fast = _projected_reads(aws)
    moto_speed.uninstall()
    try:
        reference = _projected_reads(aws)
    finally:
        moto_speed.install()
    assert fast == reference
    assert fast[0] == _sets_sorted({"s": {"S": "text 1"}, **{k: _item(1)[k] for k in ("n", "ss", "ns", "bs")}})


def test_another_moto_is_refused_and_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto
    from moto.awslambda.models import LambdaFunction
    from moto.dynamodb.responses import DynamoHandler
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    def patched() -> list[Any]:
        return [
            serialize.ResponseSerializer.get_value,
            base_backend.BaseBackend.__dict__["urls"],
            LambdaFunction.invoke,
            DynamoHandler.call_action,
            AmazonStateLanguageParser.__dict__["parse"],
        ]

    emulator.uninstall()
    before = patched()
    monkeypatch.setattr(moto, "__version__", "0.0.0")
    with pytest.raises(RuntimeError, match=f"moto=={emulator.MOTO_VERSION}, but moto==0.0.0"):
        emulator.install()
    assert patched() == before
