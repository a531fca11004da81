"""Static checks of the stack: the SAM template lints clean, and the ASL files behind its state
machines are consistent (neither SAM nor cfn-lint reads them)."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from stepgraph_local import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent
ASL_FILES = sorted(ROOT.glob("statemachine/**/*.asl.json"))


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([str(BIN / name), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cfn_lint_passes():
    result = _tool("cfn-lint", "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes():
    result = _tool("sam", "validate", "--lint", "--region", "us-east-1", "--template-file", "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_load_template_expands_short_tags():
    template = load_template(TEMPLATE)
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["STEPGRAPH_RUNS_TABLE"] == {"Ref": "RunsTable"}
    queue = template["Resources"]["RunQueue"]["Properties"]
    assert queue["QueueName"] == {"Fn::Sub": "${AWS::StackName}-runs.fifo"}
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["RunDeadLetterQueue", "Arn"]}


def _state_machines() -> list[tuple[str, dict]]:
    resources = load_template(TEMPLATE)["Resources"]
    return [
        (name, r["Properties"])
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in r["Properties"]
    ]


def test_every_asl_file_belongs_to_a_state_machine():
    assert ASL_FILES
    used = {(ROOT / props["DefinitionUri"]).resolve() for _, props in _state_machines()}
    assert {p.resolve() for p in ASL_FILES} <= used
    assert all(p.is_file() for p in used)


@pytest.mark.parametrize("name,props", _state_machines(), ids=lambda v: v if isinstance(v, str) else "")
def test_definition_substitutions_cover_every_placeholder(name, props):
    text = (ROOT / props["DefinitionUri"]).read_text(encoding="utf-8")
    placeholders = set(re.findall(r"\$\{([^}]+)\}", text))
    provided = set(props.get("DefinitionSubstitutions") or {})
    assert placeholders <= provided, f"{name}: no DefinitionSubstitutions for {sorted(placeholders - provided)}"


def _check_states(machine: dict, where: str) -> list[str]:
    """Dangling StartAt / Next / Default / Catch targets, recursing into Map and Parallel."""
    states = machine.get("States") or {}
    problems = []
    if machine.get("StartAt") not in states:
        problems.append(f"{where}: StartAt {machine.get('StartAt')!r} is not a state")
    for state_name, state in states.items():
        targets = [state.get("Next"), state.get("Default")]
        targets += [c.get("Next") for c in state.get("Choices", [])]
        targets += [c.get("Next") for c in state.get("Catch", [])]
        for target in filter(None, targets):
            if target not in states:
                problems.append(f"{where}.{state_name}: transition to missing state {target!r}")
        if state.get("Type") not in ("Choice", "Succeed", "Fail") and not state.get("End") and not state.get("Next"):
            problems.append(f"{where}.{state_name}: neither Next nor End")
        if state.get("Type") == "Choice" and not state.get("Choices"):
            problems.append(f"{where}.{state_name}: Choice without Choices")
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                problems += _check_states(state[key], f"{where}.{state_name}.{key}")
        for i, branch in enumerate(state.get("Branches", [])):
            problems += _check_states(branch, f"{where}.{state_name}.Branches[{i}]")
    return problems


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_asl_transitions_name_existing_states(path):
    machine = json.loads(path.read_text(encoding="utf-8"))
    assert _check_states(machine, path.name) == []


def test_transition_check_catches_a_dangling_next():
    machine = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "Gone"}], "Default": "B"},
            "B": {"Type": "Parallel", "Branches": [{"StartAt": "Nope", "States": {}}], "End": True},
        },
    }
    assert len(_check_states(machine, "m")) == 2


def test_sdk_users_get_one_url_that_streams():
    """DESIGN, One URL: a REST API whose Lambda proxy integration streams for up to 15 minutes, on
    every path; no buffered HTTP API and no SigV4-only Function URL beside it."""
    cfn = _transformed()
    kinds = {r["Type"] for r in cfn["Resources"].values()}
    assert "AWS::ApiGatewayV2::Api" not in kinds and "AWS::Lambda::Url" not in kinds
    (api,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    paths = api["Properties"]["Body"]["paths"]
    assert set(paths) == {"/", "/{proxy+}"}
    for item in paths.values():
        integration = item["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy" and integration["responseTransferMode"] == "STREAM"
        assert integration["timeoutInMillis"] == 900_000
        assert "/response-streaming-invocations" in integration["uri"]["Fn::Sub"]
    adapter = load_template(TEMPLATE)["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert adapter["AWS_LWA_INVOKE_MODE"] == "response_stream"  # the Web Adapter streams too


# ---------------------------------------------------------------- IAM least privilege
# The AWS managed policies SAM attaches for a function's logs, X-Ray tracing and SQS event source.
_SAM_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}
# S3 actions that change who may read objects or how long they live: never a function's to take.
_S3_FORBIDDEN = re.compile(r"^s3:(Put|Delete)\w*(Acl|Lifecycle\w*|Policy|PublicAccessBlock|Ownership\w*)$", re.I)


# Actions that AWS's Service Authorization Reference lists with no resource type: a policy can
# grant them on "*" only. Task tokens name no resource (the reference's Step Functions table, and
# cfn-lint's copy of it, data/AdditionalSpecs/Policies.json: `sendtasksuccess: {}`).
_UNSCOPABLE = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}


@functools.cache
def _transformed() -> dict:
    """template.yaml as CloudFormation (SAM's transform, which is slow: once per session)."""
    from stepgraph_local.iam_check import transform

    return transform(load_template(TEMPLATE), region="us-east-1")


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def least_privilege_problems(cfn: dict) -> list[str]:
    """What in the roles of a transformed template grants more than one action on named resources."""
    problems = []
    for name, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = resource["Properties"]
        for arn in set(props.get("ManagedPolicyArns") or []) - _SAM_MANAGED_POLICIES:
            problems.append(f"{name}: managed policy {arn}")
        for policy in props.get("Policies") or []:
            for statement in _as_list(policy["PolicyDocument"]["Statement"]):
                where = f"{name}/{policy['PolicyName']}"
                if "NotAction" in statement or "NotResource" in statement:
                    problems.append(f"{where}: NotAction/NotResource")
                actions = [a for a in _as_list(statement.get("Action")) if isinstance(a, str)]
                for action in actions:
                    if "*" in action:
                        problems.append(f"{where}: wildcard action {action}")
                    elif _S3_FORBIDDEN.match(action):
                        problems.append(f"{where}: {action} (ACLs, policies and lifecycle stay the stack's)")
                if "*" in _as_list(statement.get("Resource")):
                    scoped = sorted(set(actions) - _UNSCOPABLE)
                    if scoped:
                        problems.append(f'{where}: Resource "*" for {scoped}, which take a resource ARN')
    return problems


def test_function_roles_grant_named_actions_on_named_resources():
    """No `dynamodb:*`, `s3:*` or `states:SendTask*`; no S3 ACL, bucket policy or lifecycle
    writes; `Resource: "*"` only where AWS allows nothing narrower; no extra managed policies."""
    assert least_privilege_problems(_transformed()) == []


def test_least_privilege_check_catches_wildcards_acls_and_star_resources():
    def role(*statements: dict) -> dict:
        document = {"Version": "2012-10-17", "Statement": list(statements)}
        return {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": document}]}}

    def allow(actions: str | list[str], resource: str) -> dict:
        return {"Effect": "Allow", "Action": actions, "Resource": resource}

    cfn = {
        "Resources": {
            "Wild": role(allow(["dynamodb:*", "states:SendTask*"], "arn:x")),
            "Acl": role(allow(["s3:PutObjectAcl", "s3:PutLifecycleConfiguration"], "arn:aws:s3:::b/*")),
            "Star": role(allow("states:StopExecution", "*")),
            "Fine": role(allow(["states:SendTaskSuccess", "states:SendTaskFailure"], "*")),
        }
    }
    problems = least_privilege_problems(cfn)
    assert [p.split(":")[0].split("/")[0] for p in problems] == ["Wild", "Wild", "Acl", "Acl", "Star"]
