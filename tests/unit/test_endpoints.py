"""One setting, STEPGRAPH_ENDPOINT_URL, points every stepgraph client: AWS's own endpoints when
unset, a given URL, or a LocalStack found through `localstack-client`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_recorder import USER_TABLE, AwsRecorder
from stepgraph.settings import Clients, Settings


@pytest.fixture
def endpoint() -> Iterator[AwsRecorder]:
    recorder = AwsRecorder()  # answers DynamoDB ListTables on 127.0.0.1, as a LocalStack would
    yield recorder
    recorder.close()


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("STEPGRAPH_ENDPOINT_URL", "LOCALSTACK_HOST", "STEPGRAPH_AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def test_unset_means_aws_own_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    clients = Clients(_settings(monkeypatch, STEPGRAPH_REGION="eu-west-1"))
    assert clients.dynamodb.meta.endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"
    assert clients.sfn.meta.endpoint_url == "https://states.eu-west-1.amazonaws.com"


def test_a_url_takes_every_service_there(monkeypatch: pytest.MonkeyPatch, endpoint: AwsRecorder) -> None:
    clients = Clients(
        _settings(
            monkeypatch,
            STEPGRAPH_ENDPOINT_URL=endpoint.url,
            STEPGRAPH_AWS_ACCESS_KEY_ID="k",
            STEPGRAPH_AWS_SECRET_ACCESS_KEY="s",
        )
    )
    assert clients.dynamodb.list_tables()["TableNames"] == [USER_TABLE]
    assert {clients.sqs.meta.endpoint_url, clients.s3.meta.endpoint_url, clients.sfn.meta.endpoint_url} == {
        endpoint.url
    }


def test_localstack_is_found_through_localstack_client(monkeypatch: pytest.MonkeyPatch, endpoint: AwsRecorder) -> None:
    host = endpoint.url.removeprefix("http://")
    clients = Clients(_settings(monkeypatch, STEPGRAPH_ENDPOINT_URL="localstack", LOCALSTACK_HOST=host))
    assert clients.dynamodb.list_tables()["TableNames"] == [USER_TABLE]  # no credentials needed
    assert endpoint.requests[-1]["path"] == "/"
    assert clients.sfn.meta.endpoint_url == endpoint.url


def test_localstack_without_its_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "localstack_client.config", None)
    clients = Clients(_settings(monkeypatch, STEPGRAPH_ENDPOINT_URL="localstack"))
    with pytest.raises(RuntimeError, match=r"pip install 'stepgraph\[localstack\]'"):
        clients.client("dynamodb")
