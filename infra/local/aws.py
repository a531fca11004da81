"""The emulated AWS account: moto in-process, provisioned from `template.yaml`.

Tables, buckets, queues, secrets, functions and the state machines are created from the
template itself (no second list of resources), Lambda invokes run our handlers in-process
(`emulator.lambda_hook`), and the functions' `STEPGRAPH_*` environment is resolved to the local
physical names and exported to `os.environ`, where the in-process handlers read their settings.
Only stepgraph's own clients reach the emulator (`emulator.scope`): the process's AWS
credentials, region and endpoints are left to the user's code, as on Lambda a graph node's own
boto3 clients are the user's.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# moto imports each service's backend on its first request; importing them here keeps that
# cost (~1 s, mostly the Step Functions interpreter) in `import`, out of `LocalAWS.start()`.
import moto.awslambda.models
import moto.awslambda.responses
import moto.dynamodb.responses
import moto.iam.responses
import moto.s3.responses
import moto.scheduler.responses
import moto.secretsmanager.responses
import moto.sqs.responses
import moto.stepfunctions.parser.models
import moto.stepfunctions.responses  # noqa: F401
from botocore.exceptions import ClientError
from stepgraph.vocabulary import error_code

from . import emulator, iam
from .emulator import lambda_hook, scope
from .events import LocalEventBridge
from .scheduler import LocalScheduler
from .template import load_template

__all__ = ["LocalAWS"]

logger = logging.getLogger(__name__)

STACK_NAME = "stepgraph-local"
ACCOUNT_ID = "123456789012"  # moto's default account
_ROLE_NAME = "stepgraph-local-role"
_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
_log = logging.getLogger("stepgraph_local")


def _dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    raise NotImplementedError\n")
    return buf.getvalue()


def _attribute(value: Any) -> str:
    """A CloudFormation property value as an SQS attribute string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class LocalAWS:
    """moto in-process, provisioned with every resource of a SAM template.

    ```
    with LocalAWS("template.yaml") as aws:
        aws.client("stepfunctions").start_execution(stateMachineArn=aws.state_machine_arn, ...)
    ```

    Only clients stepgraph builds (`client()`, `stepgraph.settings.Clients`) reach it: any other
    boto3 client in the process keeps the user's credentials, region and endpoints.

    `parameters` overrides template parameter defaults; `handlers` maps a function's logical id
    to a callable run instead of the template's `CodeUri` + `Handler`. The functions' event
    rules and schedules run too (`events`); `schedule_seconds` (or the environment's
    STEPGRAPH_LOCAL_SCHEDULE_SECONDS) fires every schedule at that interval instead of its rate.
    Only one LocalAWS can run at a time in a process (moto's backends are process-wide).
    """

    _active: LocalAWS | None = None

    def __init__(
        self,
        template_path: str | Path,
        *,
        parameters: dict[str, str] | None = None,
        handlers: dict[str, Callable[[Any, Any], Any]] | None = None,
        endpoint_url: str | None = None,
        schedule_seconds: float | None = None,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        # Set: provision a moto server already running in this process (its backends are this
        # process's, so the Lambda hook applies) instead of answering stepgraph's clients in-process.
        self.endpoint_url = endpoint_url
        self.template: dict[str, Any] = load_template(self.template_path)
        # The emulated account's region: not the user's AWS_REGION, which stays theirs.
        self.region = os.environ.get("STEPGRAPH_LOCAL_REGION") or "us-east-1"
        self.account_id = ACCOUNT_ID
        self.stack_name = STACK_NAME

        declared = self.template.get("Parameters") or {}
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise ValueError(f"unknown template parameters: {sorted(unknown)}")
        self.parameters: dict[str, str] = {
            name: str((parameters or {}).get(name, spec.get("Default", ""))) for name, spec in declared.items()
        }
        functions = self._of_type("AWS::Serverless::Function")
        unknown = set(handlers or {}) - set(functions)
        if unknown:
            raise ValueError(f"handlers given for unknown functions: {sorted(unknown)}")
        self.handlers = dict(handlers or {})

        self.resources: dict[str, str] = {}  # logical id -> physical name / ARN / URL (its Ref)
        self.queue_urls: dict[str, str] = {}  # logical id -> queue URL
        self.state_machine_arns: dict[str, str] = {}  # logical id -> ARN
        self.state_machine_arn: str | None = None  # the (first) state machine
        self.environment: dict[str, str] = {}  # union of all functions' variables, resolved
        self.function_environments: dict[str, dict[str, str]] = {}  # logical id -> its variables
        # What start() put in os.environ: the STEPGRAPH_* settings of stepgraph's own code.
        self.exported_environment: dict[str, str] = {}
        self._attrs: dict[str, dict[str, str]] = {}  # logical id -> Fn::GetAtt attributes
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        local_rate = os.environ.get("STEPGRAPH_LOCAL_SCHEDULE_SECONDS")
        self.schedule_seconds = schedule_seconds or (float(local_rate) if local_rate else None)
        self.events: LocalEventBridge | None = None  # while started
        self.scheduler: LocalScheduler | None = None  # fires the emulated Scheduler's schedules, while started

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def started(self) -> bool:
        return self._mock is not None

    def start(self) -> LocalAWS:
        if self._mock is not None:
            return self
        if LocalAWS._active is not None:
            raise RuntimeError("another LocalAWS is running in this process: moto's state is process-wide")
        emulator.install()  # our Lambda handlers, thread-safe DynamoDB, moto's per-request work done once
        iam.record_from_env()  # the calls each function makes, for the IAM check (tests set the variable)
        # The engine logs every state failure (Retry/Catch paths included) at ERROR with a huge repr.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        for mapping in (
            self.resources,
            self.queue_urls,
            self.state_machine_arns,
            self.environment,
            self.function_environments,
            self._attrs,
            self.exported_environment,
        ):
            mapping.clear()
        self.state_machine_arn = None

        # lambda.use_docker stays at its default: `LambdaFunction.invoke` is hooked instead.
        if self.endpoint_url is None:
            self._mock = scope.InProcess(config={"stepfunctions": {"execute_state_machine": True}})
        else:
            from moto.moto_api import _internal

            _internal.moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}})
            self._mock = _ServerMode()
        self._mock.start()
        LocalAWS._active = self
        try:
            self._provision()
        except BaseException:
            self.stop()
            raise
        # stepgraph's own clients (Settings.from_env) find the emulated account here; the user's
        # AWS_* variables are not touched. The functions' AWS_* and PORT (the API's Lambda Web
        # Adapter) mean nothing in-process and are not exported.
        exported = {
            "STEPGRAPH_REGION": self.region,
            "STEPGRAPH_ENDPOINT_URL": self.endpoint_url or "",
            "STEPGRAPH_AWS_ACCESS_KEY_ID": scope.CREDENTIALS["aws_access_key_id"],
            "STEPGRAPH_AWS_SECRET_ACCESS_KEY": scope.CREDENTIALS["aws_secret_access_key"],
            **{key: value for key, value in self.environment.items() if not _lambda_only(key)},
        }
        for key, value in exported.items():
            self._setenv(key, value)
        self.exported_environment.update(exported)
        self.events = LocalEventBridge(self, schedule_seconds=self.schedule_seconds).start()
        self.scheduler = LocalScheduler(self).start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End every running execution, leave the mock, restore the environment.

        moto runs each execution in a daemon thread. One still alive once the mock is gone would
        call `http://localhost:$MOTO_PORT` (5000) for its next Lambda task, so every RUNNING
        execution is stopped first: StopExecution marks it stopped (no further state runs), and
        since moto's StopExecution cannot wake a task parked on `.waitForTaskToken`, each such
        pending token is also failed with SendTaskFailure (error `LocalAWS.Stopped`: moto refuses
        custom errors named `States.*`); such an execution ends FAILED, not ABORTED. Then we
        wait up to `timeout` seconds for all of them to leave RUNNING (a Retry interval or a
        handler in progress finishes first; stragglers are logged). A stopped straggler runs no
        further state, so nothing calls port 5000 and MOTO_PORT is left alone.
        """
        if self._mock is None:
            return
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.events is not None:  # first: ending the executions below must reap nothing
            self.events.stop()
            self.events = None
        try:
            self._end_executions(timeout)
        finally:
            try:
                self._mock.stop()
            finally:
                self._mock = None
                LocalAWS._active = None
                for name in self._of_type("AWS::Serverless::Function"):
                    lambda_hook.unregister(name)
                emulator.uninstall()
                for key, value in reversed(list(self._saved_env.items())):
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                self._saved_env.clear()

    def client(self, service: str) -> Any:
        """A boto3 client for the emulated account (only valid while started)."""
        return scope.client(service, region=self.region, endpoint_url=self.endpoint_url)

    # ------------------------------------------------------------------ provisioning
    def _provision(self) -> None:
        for logical_id, props in self._of_type("AWS::DynamoDB::Table").items():
            self._create_table(logical_id, props)
        for logical_id, props in self._of_type("AWS::S3::Bucket").items():
            self._create_bucket(logical_id, props)
        for logical_id, props in self._of_type("AWS::SecretsManager::Secret").items():
            self._create_secret(logical_id, props)
        self._create_queues(self._of_type("AWS::SQS::Queue"))
        for logical_id, props in self._of_type("AWS::Scheduler::ScheduleGroup").items():
            self._create_schedule_group(logical_id, props)
        # moto's CreateFunction checks that the execution role exists in IAM.
        role = self.client("iam").create_role(RoleName=_ROLE_NAME, AssumeRolePolicyDocument=_TRUST_POLICY)
        role_arn = role["Role"]["Arn"]
        # The template's own roles (the scheduler's), for their ARNs; their policies are read by
        # the IAM check from the template, not enforced here (moto enforces no IAM).
        for logical_id in self._of_type("AWS::IAM::Role"):
            self._create_role(logical_id)
        functions = self._of_type("AWS::Serverless::Function")
        merged = {name: self._with_globals(props) for name, props in functions.items()}
        for logical_id, props in merged.items():
            self._create_function(logical_id, props, role_arn)
        for logical_id, props in self._of_type("AWS::Serverless::StateMachine").items():
            self._create_state_machine(logical_id, props, role_arn)
        # Environments last: they may name any resource (a function names the state machine).
        lam = self.client("lambda")
        for logical_id, props in merged.items():
            variables = {
                key: str(self._resolve(value))
                for key, value in ((props.get("Environment") or {}).get("Variables") or {}).items()
            }
            self.function_environments[logical_id] = variables
            if variables:
                lam.update_function_configuration(FunctionName=logical_id, Environment={"Variables": variables})
            for key, value in variables.items():
                if self.environment.setdefault(key, value) != value:
                    _log.warning(
                        "%s sets %s=%r but another function sets %r; os.environ keeps the first",
                        logical_id,
                        key,
                        value,
                        self.environment[key],
                    )

    def _create_table(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self._resolve(props.get("TableName", logical_id))
        billing = props.get("BillingMode", "PROVISIONED")
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": billing,
        }
        throughput = props.get("ProvisionedThroughput") or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        if billing == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = throughput
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                indexes = [dict(index) for index in props[key]]
                if billing == "PROVISIONED" and key == "GlobalSecondaryIndexes":
                    for index in indexes:
                        index.setdefault("ProvisionedThroughput", throughput)
                kwargs[key] = indexes
        if props.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        ddb = self.client("dynamodb")
        table = ddb.create_table(**kwargs)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        self.resources[logical_id] = name
        self._attrs[logical_id] = {"Arn": table["TableArn"]}
        if table.get("LatestStreamArn"):
            self._attrs[logical_id]["StreamArn"] = table["LatestStreamArn"]

    def _create_bucket(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self._resolve(props.get("BucketName", logical_id.lower()))
        kwargs: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        s3 = self.client("s3")
        s3.create_bucket(**kwargs)
        rules = (props.get("LifecycleConfiguration") or {}).get("Rules")
        if rules:  # stored, as on AWS (moto expires nothing): the suite reads them back
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]}
            )
        self.resources[logical_id] = name
        self._attrs[logical_id] = {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
        }

    def _create_secret(self, logical_id: str, props: dict[str, Any]) -> None:
        """A secret with its `SecretString`, or one generated as CloudFormation would."""
        sm = self.client("secretsmanager")
        name = self._resolve(props.get("Name", f"{self.stack_name}-{logical_id}"))
        if "SecretString" in props:
            value = str(self._resolve(props["SecretString"]))
        else:
            options = props.get("GenerateSecretString") or {}
            # GetRandomPassword takes GenerateSecretString's options (but the JSON-template ones).
            known = {k: v for k, v in options.items() if k not in ("SecretStringTemplate", "GenerateStringKey")}
            value = sm.get_random_password(**known)["RandomPassword"]
        arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
        self.resources[logical_id] = arn  # a secret's Ref is its ARN
        self._attrs[logical_id] = {"Id": arn}

    def _create_queues(self, queues: dict[str, dict[str, Any]]) -> None:
        # Dead-letter queues first: a RedrivePolicy names its target's ARN.
        pending = dict(queues)
        sqs = self.client("sqs")
        while pending:
            ready = [q for q, props in pending.items() if not (self._refs(props) & set(pending))]
            if not ready:
                raise ValueError(f"circular references between queues {sorted(pending)}")
            for logical_id in ready:
                props = pending.pop(logical_id)
                fifo = bool(props.get("FifoQueue"))
                default = f"{self.stack_name}-{logical_id}" + (".fifo" if fifo else "")
                name = self._resolve(props.get("QueueName", default))
                attributes = {
                    key: _attribute(self._resolve(value))
                    for key, value in props.items()
                    if key not in ("QueueName", "Tags")
                }
                url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
                got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
                arn = got["Attributes"]["QueueArn"]
                self.resources[logical_id] = url
                self.queue_urls[logical_id] = url
                self._attrs[logical_id] = {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def _create_schedule_group(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self._resolve(props.get("Name", f"{self.stack_name}-{logical_id}"))
        arn = self.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
        self.resources[logical_id] = name  # a schedule group's Ref is its name
        self._attrs[logical_id] = {"Arn": arn}

    def _create_role(self, logical_id: str) -> None:
        name = f"{self.stack_name}-{logical_id}"
        role = self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=_TRUST_POLICY)["Role"]
        self.resources[logical_id] = name  # a role's Ref is its name
        self._attrs[logical_id] = {"Arn": role["Arn"], "RoleId": role["RoleId"]}

    def _with_globals(self, props: dict[str, Any]) -> dict[str, Any]:
        defaults = dict((self.template.get("Globals") or {}).get("Function") or {})
        merged = {**defaults, **props}
        variables = {
            **((defaults.get("Environment") or {}).get("Variables") or {}),
            **((props.get("Environment") or {}).get("Variables") or {}),
        }
        merged["Environment"] = {"Variables": variables}
        return merged

    def _create_function(self, logical_id: str, props: dict[str, Any], role_arn: str) -> None:
        kwargs: dict[str, Any] = {
            "FunctionName": logical_id,
            "Runtime": props.get("Runtime", "python3.12"),
            "Role": role_arn,
            "Handler": props.get("Handler", "app.handler"),
            "Code": {"ZipFile": _DUMMY_ZIP},
            "MemorySize": int(props.get("MemorySize", 128)),
            "Timeout": int(props.get("Timeout", 3)),
        }
        if props.get("Architectures"):
            kwargs["Architectures"] = props["Architectures"]
        fn = self.client("lambda").create_function(**kwargs)
        self.resources[logical_id] = fn["FunctionName"]
        self._attrs[logical_id] = {"Arn": fn["FunctionArn"]}
        iam.name_principal(fn["FunctionName"], logical_id)
        if logical_id in self.handlers:
            lambda_hook.register(logical_id, self.handlers[logical_id])
        else:
            code_dir = self.template_path.parent / str(props.get("CodeUri", "."))
            lambda_hook.register_source(logical_id, code_dir, kwargs["Handler"])

    def _create_state_machine(self, logical_id: str, props: dict[str, Any], role_arn: str) -> None:
        if "Definition" in props:
            definition = props["Definition"]
        else:
            uri = props["DefinitionUri"]
            if not isinstance(uri, str):
                raise ValueError(f"{logical_id}: only a local DefinitionUri file is supported, got {uri!r}")
            definition = json.loads((self.template_path.parent / uri).read_text(encoding="utf-8"))
        substitutions = {
            key: str(self._resolve(value)) for key, value in (props.get("DefinitionSubstitutions") or {}).items()
        }
        definition = _substitute(definition, substitutions)
        name = self._resolve(props.get("Name", logical_id))
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=json.dumps(definition),
            roleArn=self._resolve(props.get("Role", role_arn)),
            type=props.get("Type", "STANDARD"),
        )["stateMachineArn"]
        self.resources[logical_id] = arn
        self.state_machine_arns[logical_id] = arn
        iam.name_principal(arn, logical_id)
        self.state_machine_arn = self.state_machine_arn or arn
        self._attrs[logical_id] = {"Arn": arn, "Name": name}

    # ------------------------------------------------------------------ shutdown
    def _end_executions(self, timeout: float) -> None:
        sfn = self.client("stepfunctions")

        def running() -> list[str]:
            arns = []
            for sm_arn in self.state_machine_arns.values():
                pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=sm_arn, statusFilter="RUNNING")
                arns += [e["executionArn"] for page in pages for e in page["executions"]]
            return arns

        arns = running()
        if not arns:
            return
        for arn in arns:
            sfn.stop_execution(executionArn=arn, error="LocalAWS.Stopped", cause="LocalAWS.stop()")
        for token in _pending_task_tokens(self.account_id, self.region, set(arns)):
            try:
                sfn.send_task_failure(taskToken=token, error="LocalAWS.Stopped", cause="LocalAWS.stop()")
            except ClientError as exc:
                # Spent or timed out meanwhile: that execution is not waiting any more either.
                logger.debug("task token already answered at stop (%s)", error_code(exc))
        deadline = time.monotonic() + timeout
        while (arns := running()) and time.monotonic() < deadline:
            time.sleep(0.02)
        if arns:
            _log.warning("executions still running after stop(), left to end on their own: %s", arns)

    # ------------------------------------------------------------------ intrinsics
    def resolve(self, value: Any) -> Any:
        """A template value (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, ...) as this stack has it:
        the local physical names and ARNs (only while started)."""
        return self._resolve(value)

    def _of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            name: resource.get("Properties") or {}
            for name, resource in (self.template.get("Resources") or {}).items()
            if resource.get("Type") == resource_type
        }

    def _refs(self, value: Any) -> set[str]:
        """Logical ids named by Ref / Fn::GetAtt inside `value`."""
        if isinstance(value, dict):
            if "Ref" in value:
                return {value["Ref"]}
            if "Fn::GetAtt" in value:
                target = value["Fn::GetAtt"]
                return {target[0] if isinstance(target, list) else target.split(".")[0]}
            if "Fn::Sub" in value:
                arg = value["Fn::Sub"]
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                named = {m.split(".")[0] for m in re.findall(r"\$\{([^}!][^}]*)\}", text)}
                return (named - set(variables)) | self._refs(variables)
            return set().union(*(self._refs(v) for v in value.values())) if value else set()
        if isinstance(value, list):
            return set().union(*(self._refs(v) for v in value)) if value else set()
        return set()

    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local"),
        }.get(name)

    def _ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.resources:
            return self.resources[name]
        raise KeyError(f"cannot resolve Ref {name!r} locally (not a parameter or a provisioned resource)")

    def _get_att(self, name: str, attribute: str) -> str:
        try:
            return self._attrs[name][attribute]
        except KeyError:
            raise KeyError(f"cannot resolve Fn::GetAtt {name}.{attribute} locally") from None

    def _resolve(self, value: Any) -> Any:
        """Ref / Fn::GetAtt / Fn::Sub / Fn::Join / Fn::Select / Fn::Split to local values."""
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(name, attribute)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self._sub(text, {k: self._resolve(v) for k, v in variables.items()})
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(str(i) for i in self._resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self._resolve(items)[int(self._resolve(index))]
            if key == "Fn::Split":
                delimiter, text = arg
                return str(self._resolve(text)).split(delimiter)
            if key.startswith("Fn::"):
                raise NotImplementedError(f"{key} is not supported by the local runtime")
        return {k: self._resolve(v) for k, v in value.items()}

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):  # ${!Literal} -> ${Literal}
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and expr.split(".", 1)[0] in self._attrs:
                return self._get_att(*expr.split(".", 1))
            return str(self._ref(expr))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _setenv(self, key: str, value: str) -> None:
        if key not in self._saved_env:
            self._saved_env[key] = os.environ.get(key)
        os.environ[key] = value


class _ServerMode:
    """Stands in for mock_aws when a moto server in this process serves the requests."""

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


_DUMMY_ZIP = _dummy_zip()
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")


def _lambda_only(variable: str) -> bool:
    """A function variable for the Lambda service itself (or the user's AWS_*), not our code."""
    return variable.startswith("AWS_") or variable == "PORT"


def _substitute(node: Any, substitutions: dict[str, str]) -> Any:
    """SAM DefinitionSubstitutions: replace `${Key}` in every string of the definition."""
    if isinstance(node, str):
        return _PLACEHOLDER.sub(lambda m: substitutions.get(m.group(1), m.group(0)), node)
    if isinstance(node, list):
        return [_substitute(v, substitutions) for v in node]
    if isinstance(node, dict):
        return {_substitute(k, substitutions): _substitute(v, substitutions) for k, v in node.items()}
    return node


def _pending_task_tokens(account_id: str, region: str, execution_arns: set[str]) -> list[str]:
    """Task tokens that running executions are parked on and nobody has answered yet.

    moto keeps them in each execution's callback pool (an internal API of the moto version
    `emulator.MOTO_VERSION` names); there is no public call that lists them.
    """
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    tokens: list[str] = []
    backend = stepfunctions_parser_backends[account_id][region]
    for state_machine in backend.state_machines:
        for execution in state_machine.executions:
            # The parser backend's executions (its own Execution subclass) carry these two.
            arn, worker = getattr(execution, "exec_arn", None), getattr(execution, "exec_worker", None)
            if arn not in execution_arns or worker is None:
                continue
            env = getattr(worker, "env", None)
            pool = getattr(getattr(env, "callback_pool_manager", None), "_pool", {})
            tokens += [token for token, endpoint in list(pool.items()) if endpoint.get_outcome() is None]
    return tokens


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule (the properties the template uses) in the S3 API's shape."""
    out: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    return out
