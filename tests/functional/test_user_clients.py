"""A graph node's own AWS calls are the user's: under the local runtime only stepgraph's own
clients reach the emulator; a node's `boto3.client(...)` gets the credentials, region and
endpoints of the environment the server was started with, and its calls go there."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from aws_recorder import USER_BUCKET, USER_TABLE, AwsRecorder
from cluster import Cluster
from stepgraph.api.runs import create_run
from stepgraph.api.schemas import RunCreate
from stepgraph.api.threads import new_thread
from stepgraph.engine.state import get_thread_state
from stepgraph_local.runtime import LocalRuntime

CONFIG = Path(__file__).resolve().parents[1] / "graphs" / "user_clients.json"
_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_DYNAMODB",
)


@pytest.fixture
def recorder() -> Iterator[AwsRecorder]:
    rec = AwsRecorder()
    yield rec
    rec.close()


def user_environment(how: str, recorder: AwsRecorder, directory: Path) -> dict[str, str]:
    """The user's AWS setup, from variables or from a profile in their config files; either way
    their own endpoints (botocore's AWS_ENDPOINT_URL_<SERVICE>) point at the recorder."""
    endpoints = {"AWS_ENDPOINT_URL_S3": recorder.url, "AWS_ENDPOINT_URL_DYNAMODB": recorder.url}
    if how == "variables":
        return {
            "AWS_ACCESS_KEY_ID": "AKIAUSERKEY",
            "AWS_SECRET_ACCESS_KEY": "user-secret",
            "AWS_DEFAULT_REGION": "eu-west-3",
            **endpoints,
        }
    (directory / "config").write_text("[profile user]\nregion = eu-west-3\n")
    (directory / "credentials").write_text(
        "[user]\naws_access_key_id = AKIAUSERKEY\naws_secret_access_key = user-secret\n"
    )
    return {
        "AWS_PROFILE": "user",
        "AWS_CONFIG_FILE": str(directory / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "credentials"),
        **endpoints,
    }


def assert_the_users(report: dict, recorder: AwsRecorder, environ: dict[str, str | None]) -> None:
    """What a node's own clients were given, and where their calls went."""
    for service in ("s3", "dynamodb"):
        assert report[service]["access_key"] == "AKIAUSERKEY", report
        assert report[service]["region"] == "eu-west-3", report
        assert report[service]["endpoint_url"] == recorder.url, report
    # Answered by the user's endpoint, not by the emulator (which holds stepgraph's tables).
    assert report["s3"].get("answer", {}).get("Buckets", [{}])[0].get("Name") == USER_BUCKET, report
    assert report["dynamodb"].get("answer") == {"TableNames": [USER_TABLE]}, report
    # The node saw the process's own variables, not fake ones.
    assert report["environ"] == environ
    assert len(recorder.requests) == 2
    for request in recorder.requests:
        authorization = request["headers"]["Authorization"]
        assert "Credential=AKIAUSERKEY/" in authorization and "/eu-west-3/" in authorization, authorization


@pytest.mark.parametrize("how", ["variables", "profile"])
def test_a_nodes_own_clients_are_the_users(how, recorder, tmp_path, monkeypatch):
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in user_environment(how, recorder, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # as in a fresh process: read this environment
    before = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}

    runtime = LocalRuntime(config_path=CONFIG).start()
    try:
        # Nothing of the emulator's leaks into the process's AWS settings.
        assert {k: v for k, v in os.environ.items() if k.startswith("AWS_")} == before
        ctx = runtime.ctx
        thread_id = str(uuid.uuid4())
        new_thread(ctx, thread_id, {})
        run = create_run(ctx, thread_id, RunCreate(assistant_id="user_clients", input={}))
        deadline = time.monotonic() + 20
        while (status := ctx.runs.get(thread_id, run["run_id"])["status"]) in ("pending", "running"):
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.02)
        assert status == "success"  # stepgraph's own calls (tables, queue, state machine) reached the emulator
        report = get_thread_state(ctx, thread_id, "user_clients").values["report"]
    finally:
        runtime.stop()
    environ = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_REGION", "AWS_DEFAULT_REGION")}
    assert_the_users(report, recorder, environ)
    assert {k: v for k, v in os.environ.items() if k.startswith("AWS_")} == before


def test_split_mode_worker_leaves_a_nodes_clients_to_the_user(recorder, tmp_path):
    """`stepgraph aws` + `stepgraph worker`: the worker reaches the moto server with stepgraph's
    STEPGRAPH_* settings only; the user's environment it was started with is the node's."""
    user = user_environment("variables", recorder, tmp_path)
    cluster = Cluster(config=CONFIG, worker_env=user).start()
    try:
        assert not [k for k in cluster.env if k.startswith("AWS_")]  # the workers' environment file
        thread_id = str(uuid.uuid4())
        new_thread(cluster.ctx, thread_id, {})
        run = create_run(cluster.ctx, thread_id, RunCreate(assistant_id="user_clients", input={}))
        deadline = time.monotonic() + 30
        while (status := cluster.ctx.runs.get(thread_id, run["run_id"])["status"]) in ("pending", "running"):
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.05)
        assert status == "success", cluster.logs()
        report = get_thread_state(cluster.ctx, thread_id, "user_clients").values["report"]
    finally:
        cluster.stop()
    assert_the_users(
        report, recorder, {"AWS_ACCESS_KEY_ID": "AKIAUSERKEY", "AWS_REGION": None, "AWS_DEFAULT_REGION": "eu-west-3"}
    )
