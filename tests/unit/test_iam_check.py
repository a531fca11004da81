"""The IAM check on synthetic records: how one boto3 call becomes the authorizations AWS makes
(`iam_calls`), and how recorded calls are held against a template's policies (`check`), with
SAM's policy templates expanded by aws-sam-translator and values resolved by a stand-in stack."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from stepgraph_local import iam
from stepgraph_local.iam import Call, iam_calls
from stepgraph_local.iam_check import check

REGION, ACCOUNT = "us-east-1", "123456789012"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table"


def _calls(service: str, operation: str, **params: Any) -> list[tuple[str, str]]:
    return iam_calls(service, operation, params, region=REGION, account=ACCOUNT)


def test_a_transaction_is_authorized_item_by_item_on_each_items_table():
    assert _calls(
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[
            {"Put": {"TableName": "Checkpoints", "Item": {}}},
            {"Update": {"TableName": "Runs", "Key": {}}},
            {"ConditionCheck": {"TableName": "Threads", "Key": {}}},
            {"Delete": {"TableName": "Checkpoints", "Key": {}}},
        ],
    ) == [
        ("dynamodb:PutItem", f"{TABLE}/Checkpoints"),
        ("dynamodb:UpdateItem", f"{TABLE}/Runs"),
        ("dynamodb:ConditionCheckItem", f"{TABLE}/Threads"),
        ("dynamodb:DeleteItem", f"{TABLE}/Checkpoints"),
    ]
    assert _calls("dynamodb", "TransactGetItems", TransactItems=[{"Get": {"TableName": "Runs"}}]) == [
        ("dynamodb:GetItem", f"{TABLE}/Runs")
    ]


def test_a_query_on_an_index_is_authorized_on_the_index():
    assert _calls("dynamodb", "Query", TableName="Runs", IndexName="by_status") == [
        ("dynamodb:Query", f"{TABLE}/Runs/index/by_status")
    ]
    assert _calls("dynamodb", "BatchWriteItem", RequestItems={"Events": [], "Runs": []}) == [
        ("dynamodb:BatchWriteItem", f"{TABLE}/Events"),
        ("dynamodb:BatchWriteItem", f"{TABLE}/Runs"),
    ]


def test_a_secret_is_read_on_the_arn_it_is_named_by():
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:stack-WebhookSecret-AbCdEf"
    assert _calls("secretsmanager", "GetSecretValue", SecretId=secret) == [("secretsmanager:GetSecretValue", secret)]


def test_s3_calls_are_authorized_as_the_object_actions_they_are():
    assert _calls("s3", "HeadObject", Bucket="b", Key="k/1") == [("s3:GetObject", "arn:aws:s3:::b/k/1")]
    assert _calls("s3", "ListObjectsV2", Bucket="b", Prefix="k/") == [("s3:ListBucket", "arn:aws:s3:::b")]
    assert _calls("s3", "DeleteObjects", Bucket="b", Delete={"Objects": [{"Key": "x"}, {"Key": "y"}]}) == [
        ("s3:DeleteObject", "arn:aws:s3:::b/x"),
        ("s3:DeleteObject", "arn:aws:s3:::b/y"),
    ]
    for source in ({"Bucket": "a", "Key": "from/1"}, "a/from%2F1?versionId=3"):
        assert _calls("s3", "CopyObject", Bucket="b", Key="to/1", CopySource=source) == [
            ("s3:GetObject", "arn:aws:s3:::a/from/1"),
            ("s3:PutObject", "arn:aws:s3:::b/to/1"),
        ]


def test_queues_executions_functions_and_task_tokens():
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/runs.fifo"
    assert _calls("sqs", "DeleteMessageBatch", QueueUrl=url, Entries=[]) == [
        ("sqs:DeleteMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:runs.fifo")
    ]
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:Run:r1"
    assert _calls("states", "StopExecution", executionArn=execution) == [("states:StopExecution", execution)]
    assert _calls("states", "SendTaskSuccess", taskToken="t", output="{}") == [("states:SendTaskSuccess", "*")]
    assert _calls("lambda", "Invoke", FunctionName="Step") == [
        ("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Step")
    ]
    # Not mapped: on `*`, which no policy naming its resources allows, so the check fails loudly.
    assert _calls("dynamodb", "ListTables") == [("dynamodb:ListTables", "*")]


# ---------------------------------------------------------------- the check
def _template(step_policies: list[Any]) -> dict[str, Any]:
    return {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Runs": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Events": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Step": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "functions/step/",
                    "Handler": "app.handler",
                    "Runtime": "python3.12",
                    "Policies": step_policies,
                },
            },
            "Machine": {
                "Type": "AWS::Serverless::StateMachine",
                "Properties": {
                    "DefinitionUri": "machine.asl.json",
                    "Policies": [{"LambdaInvokePolicy": {"FunctionName": {"Ref": "Step"}}}],
                },
            },
        },
    }


def _resolve(value: Any) -> Any:
    """A stand-in stack: tables, functions and pseudo parameters by name."""
    if isinstance(value, dict) and "Ref" in value:
        return {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}.get(
            value["Ref"], value["Ref"]
        )
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        name, _ = value["Fn::GetAtt"]
        return f"{TABLE}/{name}"
    if isinstance(value, dict) and "Fn::Sub" in value:
        text, variables = value["Fn::Sub"]
        for key, inner in variables.items():
            text = text.replace("${" + key + "}", _resolve(inner))
        for key in ("AWS::Partition", "AWS::Region", "AWS::AccountId"):
            text = text.replace("${" + key + "}", _resolve({"Ref": key}))
        return text
    return value


RUN_WRITES = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            "Resource": {"Fn::GetAtt": ["Runs", "Arn"]},
        }
    ]
}


def test_a_call_its_policies_allow_passes_and_unused_permissions_are_listed():
    calls = [
        Call("Step", "dynamodb:UpdateItem", f"{TABLE}/Runs"),
        Call("Machine", "lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Step"),
    ]
    report = check(calls, _template([RUN_WRITES]), _resolve, region=REGION)
    assert report.denied == []
    assert [(g.principal, g.action, g.resource) for g in report.unused] == [
        ("Step", "dynamodb:GetItem", f"{TABLE}/Runs")
    ]
    assert "  Step: dynamodb:GetItem on arn:aws:dynamodb:us-east-1:123456789012:table/Runs" in "\n".join(report.lines())


def test_a_call_on_another_resource_or_by_another_principal_is_denied_by_name():
    calls = [
        Call("Step", "dynamodb:UpdateItem", f"{TABLE}/Events"),
        Call("Machine", "dynamodb:UpdateItem", f"{TABLE}/Runs"),
        Call("Nobody", "dynamodb:GetItem", f"{TABLE}/Runs"),
    ]
    report = check(calls, _template([RUN_WRITES]), _resolve, region=REGION)
    assert report.denials().splitlines() == [
        f"Machine: dynamodb:UpdateItem on {TABLE}/Runs is not allowed by template.yaml",
        f"Nobody: dynamodb:GetItem on {TABLE}/Runs is not allowed by template.yaml",
        f"Step: dynamodb:UpdateItem on {TABLE}/Events is not allowed by template.yaml",
    ]


def test_sam_policy_templates_are_expanded_and_wildcards_follow_iam():
    # DynamoDBReadPolicy grants GetItem/Query/Scan/... on the table and its indexes; actions
    # match case-insensitively, resources case-sensitively.
    template = _template([{"DynamoDBReadPolicy": {"TableName": {"Ref": "Runs"}}}])
    report = check(
        [
            Call("Step", "dynamodb:query", f"{TABLE}/Runs/index/by_status"),
            Call("Step", "dynamodb:GetItem", f"{TABLE}/runs"),
            Call("Step", "dynamodb:UpdateItem", f"{TABLE}/Runs"),
        ],
        template,
        _resolve,
        region=REGION,
    )
    assert [(c.action, c.resource) for c in report.denied] == [
        ("dynamodb:GetItem", f"{TABLE}/runs"),
        ("dynamodb:UpdateItem", f"{TABLE}/Runs"),
    ]


def test_deny_wins_star_is_flagged_where_an_arn_could_be_named_and_conditions_are_refused():
    star = {
        "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "states:SendTaskSuccess"], "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["Events", "Arn"]}},
        ]
    }
    report = check(
        [Call("Step", "dynamodb:GetItem", f"{TABLE}/Events"), Call("Step", "dynamodb:GetItem", f"{TABLE}/Runs")],
        _template([star]),
        _resolve,
        region=REGION,
    )
    assert [c.resource for c in report.denied] == [f"{TABLE}/Events"]
    assert [(g.action, g.resource) for g in report.unnamed] == [("dynamodb:GetItem", "*")]  # not the token action

    conditional = {
        "Statement": [{**RUN_WRITES["Statement"][0], "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]
    }
    with pytest.raises(ValueError, match="Condition"):
        check([], _template([conditional]), _resolve, region=REGION)


def test_recording_attributes_calls_to_the_principal_and_keeps_the_rest_apart(tmp_path):
    log = tmp_path / "calls.jsonl"
    recorder = iam.Recorder(log, ACCOUNT)
    params = {"TableName": "Runs", "Key": {}}
    with iam.acting_as("Step"):
        recorder.observe("dynamodb", "GetItem", params, REGION)
        recorder.observe("dynamodb", "GetItem", params, REGION)  # the same call again: one line
        worker = threading.Thread(target=recorder.observe, args=("dynamodb", "PutItem", params, REGION), name="other")
        worker.start()  # a thread does not inherit the context
        worker.join()
    recorder.observe("dynamodb", "DeleteItem", params, REGION)
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"principal": "Step", "action": "dynamodb:GetItem", "resource": f"{TABLE}/Runs"}
    ]
    assert recorder.unattributed == {("other", "dynamodb:PutItem"), ("MainThread", "dynamodb:DeleteItem")}
    log.write_text(log.read_text() + '{"principal": "Step", "act')  # a process killed mid-line
    assert iam.read_calls(log) == {Call("Step", "dynamodb:GetItem", f"{TABLE}/Runs")}
