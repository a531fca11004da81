"""A graph whose node builds its own boto3 clients, as a node calling Bedrock or the user's own
table does: it reports what those clients were given and calls each once.

Its clients take everything from the environment the server was started with; the test points
their endpoints (AWS_ENDPOINT_URL_S3 / _DYNAMODB) at a recorder on 127.0.0.1, never off the
machine.
"""

from __future__ import annotations

import os
from typing import Any, TypedDict

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    report: dict[str, Any]


def _describe(client: Any) -> dict[str, Any]:
    credentials = client._request_signer._credentials
    return {
        "access_key": credentials.access_key if credentials is not None else None,
        "region": client.meta.region_name,
        "endpoint_url": client.meta.endpoint_url,
    }


def own_aws_calls(state: State) -> State:
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    report: dict[str, Any] = {"s3": _describe(s3), "dynamodb": _describe(dynamodb)}
    report["environ"] = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_REGION", "AWS_DEFAULT_REGION")}
    for name, call in (("s3", s3.list_buckets), ("dynamodb", dynamodb.list_tables)):
        try:
            response = call()
            response.pop("ResponseMetadata", None)
            report[name]["answer"] = response
        except (BotoCoreError, ClientError) as exc:  # the test reads what happened
            report[name]["error"] = f"{type(exc).__name__}: {exc}"
    return {"report": report}


graph = StateGraph(State).add_node("own_aws_calls", own_aws_calls)
graph = graph.add_edge(START, "own_aws_calls").add_edge("own_aws_calls", END).compile()
