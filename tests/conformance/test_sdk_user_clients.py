"""Through the SDK, as a user runs it: `stepgraph dev` started with the user's AWS setup; a graph
node's own boto3 clients get that setup, and their calls go to the user's endpoints, not to the
emulated AWS that serves stepgraph itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_recorder import USER_BUCKET, USER_TABLE, AwsRecorder
from harness import Server
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")

CONFIG = Path(__file__).resolve().parents[1] / "graphs" / "user_clients.json"


@pytest.fixture
def recorder() -> Iterator[AwsRecorder]:
    rec = AwsRecorder()
    yield rec
    rec.close()


async def test_a_nodes_own_clients_get_the_servers_aws_environment(recorder):
    user = {
        "AWS_ACCESS_KEY_ID": "AKIAUSERKEY",
        "AWS_SECRET_ACCESS_KEY": "user-secret",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "AWS_ENDPOINT_URL_S3": recorder.url,
        "AWS_ENDPOINT_URL_DYNAMODB": recorder.url,
    }
    server = Server(config=CONFIG, env=user).wait_ready()
    try:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        result = await client.runs.wait(thread["thread_id"], "user_clients", input={})
    finally:
        log = server.stop()
    report = result["report"]
    for service in ("s3", "dynamodb"):
        assert report[service]["access_key"] == "AKIAUSERKEY", (report, log[-3000:])
        assert report[service]["region"] == "eu-west-3", report
        assert report[service]["endpoint_url"] == recorder.url, report
    assert report["s3"]["answer"]["Buckets"][0]["Name"] == USER_BUCKET, report
    assert report["dynamodb"]["answer"] == {"TableNames": [USER_TABLE]}, report
    assert report["environ"] == {
        "AWS_ACCESS_KEY_ID": "AKIAUSERKEY",
        "AWS_REGION": None,
        "AWS_DEFAULT_REGION": "eu-west-3",
    }
    assert [("Credential=AKIAUSERKEY/" in r["headers"]["Authorization"]) for r in recorder.requests] == [True, True]
