"""The local AWS emulation: provisioning from template.yaml, in-process Lambdas, and the real
run state machine executed by moto."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest
from stepgraph_local import LocalAWS, load_template
from stepgraph_local.emulator import MOTO_VERSION, lambda_hook

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
RUN_INPUT = {
    "run_id": "r1",
    "thread_id": "t1",
    "step": {"status": "pending", "park_timeout_seconds": 0, "count": 0},
    "error": None,
}


def _client(service: str):
    """A client of the running LocalAWS: only stepgraph's clients reach the emulator."""
    assert LocalAWS._active is not None
    return LocalAWS._active.client(service)


def _resources(resource_type: str) -> dict[str, dict]:
    resources = load_template(TEMPLATE)["Resources"]
    return {name: r.get("Properties") or {} for name, r in resources.items() if r["Type"] == resource_type}


@pytest.fixture
def local_aws():
    started: list[LocalAWS] = []

    def start(**kwargs) -> LocalAWS:
        aws = LocalAWS(TEMPLATE, **kwargs).start()
        started.append(aws)
        return aws

    yield start
    for aws in started:
        aws.stop()


def _run(aws: LocalAWS, name: str, run_input: dict | None = None, timeout: float = 20.0) -> tuple[dict, list[dict]]:
    """Start an execution of the run state machine, wait for it to end: (description, history)."""
    sfn = _client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=aws.state_machine_arn, name=name, input=json.dumps(run_input or RUN_INPUT)
    )["executionArn"]
    return _wait(arn, timeout)


def _wait(arn: str, timeout: float = 20.0) -> tuple[dict, list[dict]]:
    sfn = _client("stepfunctions")
    deadline = time.monotonic() + timeout
    while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still RUNNING after {timeout}s"
        time.sleep(0.01)
    return description, sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def _states(history: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


class Recorder:
    """Handlers for Step/Park/Finish that record their events; Step replies from a script."""

    def __init__(self, *step_replies: object):
        self.step_replies = list(step_replies)
        self.calls: dict[str, list[dict]] = {"step": [], "park": [], "finish": []}
        self.parked = threading.Event()

    def step(self, event, context):
        self.calls["step"].append(event)
        reply = self.step_replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def park(self, event, context):
        self.calls["park"].append(event)
        self.parked.set()
        return {"parked": True}

    def finish(self, event, context):
        assert context.function_name == "FinishFunction" and context.get_remaining_time_in_millis() > 0
        self.calls["finish"].append(event)
        return {"resume_run_id": None}

    @property
    def handlers(self):
        return {"StepFunction": self.step, "ParkFunction": self.park, "FinishFunction": self.finish}


# ---------------------------------------------------------------------------- provisioning
def test_provisions_every_template_resource(local_aws):
    aws = local_aws()

    ddb = _client("dynamodb")
    tables = _resources("AWS::DynamoDB::Table")
    assert set(ddb.list_tables()["TableNames"]) == {aws.resources[t] for t in tables}
    for logical_id, props in tables.items():
        table = ddb.describe_table(TableName=aws.resources[logical_id])["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        assert {a["AttributeName"] for a in table["AttributeDefinitions"]} == {
            a["AttributeName"] for a in props["AttributeDefinitions"]
        }
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == {
            i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])
        }
        ttl = ddb.describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
        if props.get("TimeToLiveSpecification", {}).get("Enabled"):
            assert ttl == {
                "TimeToLiveStatus": "ENABLED",
                "AttributeName": props["TimeToLiveSpecification"]["AttributeName"],
            }
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"

    buckets = _resources("AWS::S3::Bucket")
    assert {b["Name"] for b in _client("s3").list_buckets()["Buckets"]} == {aws.resources[b] for b in buckets}

    sqs = _client("sqs")
    queues = _resources("AWS::SQS::Queue")
    assert (
        set(sqs.list_queues()["QueueUrls"]) == {aws.queue_urls[q] for q in queues} == {aws.resources[q] for q in queues}
    )
    for logical_id, props in queues.items():
        attributes = sqs.get_queue_attributes(QueueUrl=aws.queue_urls[logical_id], AttributeNames=["All"])["Attributes"]
        assert attributes.get("FifoQueue", "false") == str(props.get("FifoQueue", False)).lower()
        assert aws.queue_urls[logical_id].split("/")[-1].startswith("stepgraph-local-")
        if "RedrivePolicy" in props:
            target = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=aws.queue_urls[target], AttributeNames=["QueueArn"])
            assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn["Attributes"]["QueueArn"]

    functions = _resources("AWS::Serverless::Function")
    listed = _client("lambda").list_functions()["Functions"]
    assert {f["FunctionName"] for f in listed} == set(functions)

    machines = _resources("AWS::Serverless::StateMachine")
    listed = _client("stepfunctions").list_state_machines()["stateMachines"]
    assert {m["name"] for m in listed} == {aws.resolve(props.get("Name", name)) for name, props in machines.items()}
    assert aws.resources["RunStateMachine"].endswith(":stateMachine:stepgraph-local-run")  # its Name
    assert aws.state_machine_arn in {m["stateMachineArn"] for m in listed}
    definition = _client("stepfunctions").describe_state_machine(stateMachineArn=aws.state_machine_arn)["definition"]
    assert "${" not in definition and "function:StepFunction" in definition


def test_environment_is_resolved_and_exported(local_aws, monkeypatch):
    monkeypatch.delenv("STEPGRAPH_STEP_MODE", raising=False)
    template = load_template(TEMPLATE)
    aws = local_aws(parameters={"StepMode": "strict"})

    expected_keys = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for props in _resources("AWS::Serverless::Function").values():
        expected_keys |= set((props.get("Environment") or {}).get("Variables") or {})
    assert set(aws.environment) == expected_keys
    for key, value in aws.environment.items():
        assert isinstance(value, str) and "{" not in value, key
        if key.startswith("AWS_") or key == "PORT":  # the Lambda service's, and the user's names
            assert aws.exported_environment.get(key) is None
        else:
            assert os.environ[key] == aws.exported_environment[key] == value

    assert aws.environment["STEPGRAPH_STEP_MODE"] == "strict"  # override
    assert aws.environment["STEPGRAPH_STEP_BUDGET_MS"] == str(template["Parameters"]["StepBudgetMs"]["Default"])
    assert aws.environment["STEPGRAPH_RUN_QUEUE_URL"] == aws.queue_urls["RunQueue"]
    assert aws.environment["STEPGRAPH_STATE_MACHINE_ARN"] == aws.state_machine_arn
    assert aws.environment["STEPGRAPH_SPILL_BUCKET"] == aws.resources["SpillBucket"]
    config = _client("lambda").get_function_configuration(FunctionName="DispatchFunction")
    assert config["Environment"]["Variables"]["STEPGRAPH_STATE_MACHINE_ARN"] == aws.state_machine_arn

    aws.stop()
    assert "STEPGRAPH_STEP_MODE" not in os.environ  # restored


def test_rejects_unknown_parameters_handlers_and_a_second_instance(local_aws):
    local_aws()
    with pytest.raises(RuntimeError, match="another LocalAWS"):
        LocalAWS(TEMPLATE).start()
    with pytest.raises(ValueError, match="NoSuchParameter"):
        LocalAWS(TEMPLATE, parameters={"NoSuchParameter": "x"})
    with pytest.raises(ValueError, match="NoSuchFunction"):
        LocalAWS(TEMPLATE, handlers={"NoSuchFunction": lambda e, c: None})


# ---------------------------------------------------------------------------- the Lambda hook
def test_invoke_runs_the_handler_and_reports_errors_like_the_runtime(local_aws):
    from aws_lambda_powertools import Logger

    logger = Logger(service="test")

    @logger.inject_lambda_context  # needs a context that looks like the runtime's
    def echo(event, context):
        return {"echo": event, "fn": context.function_name}

    def boom(event, context):
        raise KeyError(event["missing"])

    aws = local_aws(handlers={"StepFunction": echo, "ParkFunction": boom})
    lam = _client("lambda")

    ok = lam.invoke(FunctionName="StepFunction", Payload=json.dumps({"a": 1}))
    assert "FunctionError" not in ok
    assert json.loads(ok["Payload"].read()) == {"echo": {"a": 1}, "fn": "StepFunction"}

    failed = lam.invoke(FunctionName=aws.resources["ParkFunction"], Payload=b"{}")
    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "KeyError" and error["errorMessage"] == "'missing'"
    assert "raise KeyError" in "".join(error["stackTrace"])


def test_handler_is_imported_from_code_uri(tmp_path, monkeypatch):
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(
        "import os\n"
        "def handler(event, context):\n"
        "    return {'table': os.environ['TABLE'], 'module': __name__, 'memory': context.memory_limit_in_mb}\n"
    )
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Globals:\n  Function:\n    MemorySize: 256\n"
        "Resources:\n"
        "  Table:\n    Type: AWS::DynamoDB::Table\n    Properties:\n"
        "      BillingMode: PAY_PER_REQUEST\n"
        "      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]\n"
        "      KeySchema: [{AttributeName: pk, KeyType: HASH}]\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: fn/\n      Handler: app.handler\n      Runtime: python3.12\n"
        "      Environment: {Variables: {TABLE: !Ref Table}}\n"
        "  Missing:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: nowhere/\n      Handler: app.handler\n      Runtime: python3.12\n"
    )
    with LocalAWS(tmp_path / "template.yaml"):
        lam = _client("lambda")
        reply = json.loads(lam.invoke(FunctionName="Fn", Payload=b"{}")["Payload"].read())
        assert reply == {"table": "Table", "module": "stepgraph_fn_fn", "memory": 256}
        assert sys.modules["stepgraph_fn_fn"].__file__ == str(tmp_path / "fn" / "app.py")

        missing = lam.invoke(FunctionName="Missing", Payload=b"{}")
        assert missing["FunctionError"] == "Unhandled"
        assert json.loads(missing["Payload"].read())["errorType"] == "Runtime.ImportModuleError"
    sys.modules.pop("stepgraph_fn_fn", None)


def test_hook_install_is_pinned_and_idempotent(monkeypatch):
    import moto
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.invoke
    lambda_hook.install()
    lambda_hook.install()
    assert LambdaFunction.invoke is not original and lambda_hook.installed()
    lambda_hook.uninstall()
    lambda_hook.uninstall()
    assert LambdaFunction.invoke is original and not lambda_hook.installed()

    monkeypatch.setattr(moto, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=re.escape(f"written against moto {MOTO_VERSION} (accepted: >=")):
        lambda_hook.install()
    assert LambdaFunction.invoke is original


# ---------------------------------------------------------------------------- the run state machine
def test_run_loops_step_until_done(local_aws):
    rec = Recorder(
        {"status": "continue", "park_timeout_seconds": 60, "count": 1},
        {"status": "continue", "park_timeout_seconds": 60, "count": 1},
        {"status": "done", "park_timeout_seconds": 60, "count": 1},
    )
    aws = local_aws(handlers=rec.handlers)

    description, history = _run(aws, "r1")

    assert description["status"] == "SUCCEEDED"
    assert len(rec.calls["step"]) == 3
    assert rec.calls["step"][0] == {
        "run_id": "r1",
        "thread_id": "t1",
        "execution": description["executionArn"],
        "count": 0,
    }
    assert rec.calls["finish"] == [{"run_id": "r1", "thread_id": "t1", "outcome": "done", "error": None}]
    assert _states(history) == ["Start", *["Step", "Route"] * 3, "Finish", "Done"]


def test_step_crash_is_retried_on_task_failed(local_aws):
    # Costs real seconds: the ASL's Retry waits 1 s, then 2 s.
    rec = Recorder(
        RuntimeError("lost the lease"),
        RuntimeError("again"),
        {"status": "done", "park_timeout_seconds": 60, "count": 1},
    )
    aws = local_aws(handlers=rec.handlers)

    description, history = _run(aws, "retry")

    assert description["status"] == "SUCCEEDED"
    assert len(rec.calls["step"]) == 3
    failures = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert [f["error"] for f in failures] == ["RuntimeError", "RuntimeError"]
    assert json.loads(failures[0]["cause"])["errorMessage"] == "lost the lease"
    assert rec.calls["finish"][0]["outcome"] == "done" and rec.calls["finish"][0]["error"] is None
    assert _states(history) == ["Start", "Step", "Route", "Finish", "Done"]


def test_parked_run_resumes_with_send_task_success(local_aws):
    rec = Recorder(
        {"status": "interrupted", "park_timeout_seconds": 60, "count": 1},
        {"status": "done", "park_timeout_seconds": 60, "count": 1},
    )
    aws = local_aws(handlers=rec.handlers)
    sfn = _client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=aws.state_machine_arn, name="r1", input=json.dumps(RUN_INPUT))[
        "executionArn"
    ]

    assert rec.parked.wait(10)
    token = rec.calls["park"][0]["task_token"]
    assert rec.calls["park"][0]["run_id"] == "r1" and token
    sfn.send_task_success(taskToken=token, output=json.dumps({"run_id": "r2"}))

    description, history = _wait(arn)
    assert description["status"] == "SUCCEEDED"
    assert [c["run_id"] for c in rec.calls["step"]] == ["r1", "r2"]
    assert rec.calls["finish"] == [{"run_id": "r2", "thread_id": "t1", "outcome": "done", "error": None}]
    assert _states(history) == ["Start", "Step", "Route", "Park", "Resume", "Step", "Route", "Finish", "Done"]


def test_park_expires_after_timeout_seconds_path(local_aws):
    rec = Recorder({"status": "interrupted", "park_timeout_seconds": 1, "count": 1})
    aws = local_aws(handlers=rec.handlers)

    started = time.monotonic()
    description, history = _run(aws, "expiring")

    assert description["status"] == "SUCCEEDED"
    assert 1.0 <= time.monotonic() - started < 5
    scheduled = [e["taskScheduledEventDetails"] for e in history if e["type"] == "TaskScheduled"]
    assert scheduled[1]["timeoutInSeconds"] == 1  # Park's TimeoutSecondsPath
    assert [e["taskTimedOutEventDetails"]["error"] for e in history if e["type"] == "TaskTimedOut"] == [
        "States.Timeout"
    ]
    assert rec.calls["finish"] == [
        {"run_id": "r1", "thread_id": "t1", "outcome": "expired", "execution": description["executionArn"]}
    ]
    assert _states(history) == ["Start", "Step", "Route", "Park", "Expire", "AfterExpire", "Done"]


def test_start_execution_is_idempotent_only_while_running(local_aws):
    rec = Recorder({"status": "interrupted", "park_timeout_seconds": 60, "count": 1})
    aws = local_aws(handlers=rec.handlers)
    sfn = _client("stepfunctions")
    start = dict(stateMachineArn=aws.state_machine_arn, name="same", input=json.dumps(RUN_INPUT))
    arn = sfn.start_execution(**start)["executionArn"]
    assert rec.parked.wait(10)

    assert sfn.start_execution(**start)["executionArn"] == arn  # same name + input, still running
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(**{**start, "input": "{}"})
    sfn.send_task_failure(taskToken=rec.calls["park"][0]["task_token"], error="Cancelled")
    assert _wait(arn)[0]["status"] == "SUCCEEDED"  # Catch -> Abandoned
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(**start)  # same name + input, but closed


def test_stop_ends_parked_executions(local_aws):
    baseline = threading.active_count()
    rec = Recorder({"status": "interrupted", "park_timeout_seconds": 3600, "count": 1})
    aws = local_aws(handlers=rec.handlers)
    sfn = _client("stepfunctions")
    sfn.start_execution(stateMachineArn=aws.state_machine_arn, name="parked", input=json.dumps(RUN_INPUT))
    assert rec.parked.wait(10)
    assert threading.active_count() > baseline

    started = time.monotonic()
    aws.stop()

    assert time.monotonic() - started < 1
    deadline = time.monotonic() + 1
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= baseline
    assert rec.calls["finish"] == []  # stopped: no further state ran
    assert not lambda_hook.installed()
