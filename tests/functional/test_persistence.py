"""The local runtime's data folder (`stepgraph_local.persistence`), in-process: what a runtime
wrote is there when the next one starts on the folder, whatever the service; one folder serves
one runtime at a time; a snapshot that cannot be read stops the start with a way out."""

from __future__ import annotations

import json

import httpx
import pytest
from harness import ApiThread
from stepgraph_local.persistence import SNAPSHOT_NAME, DataDirError, Persistence
from stepgraph_local.runtime import LocalRuntime, api_app

pytestmark = pytest.mark.timeout(60)


def test_a_restarted_runtime_has_every_service_state_it_had(tmp_path):
    first = LocalRuntime(data_dir=tmp_path).start()
    try:
        api = ApiThread(api_app(first.ctx))
        thread_id = httpx.post(f"{api.url}/threads", json={"metadata": {"kept": "yes"}}).json()["thread_id"]
        body = {"assistant_id": "chain", "input": {"items": []}}
        run = httpx.post(f"{api.url}/threads/{thread_id}/runs/wait", json=body, timeout=30)
        assert run.json()["items"] == ["a", "b", "c"]
        cron = httpx.post(f"{api.url}/runs/crons", json={**body, "schedule": "0 3 * * *"}).json()
        item = {"namespace": ["notes"], "key": "kept", "value": {"text": "kept"}}
        assert httpx.put(f"{api.url}/store/items", json=item).status_code == 204
        api.stop()
        # Beyond the tables: an object, a queued message, a secret, the cron's Scheduler schedule.
        aws = first.aws
        bucket = aws.resources["SpillBucket"]
        aws.client("s3").put_object(Bucket=bucket, Key="kept.txt", Body=b"kept")
        dlq = aws.queue_urls["RunDeadLetterQueue"]
        aws.client("sqs").send_message(
            QueueUrl=dlq, MessageBody=json.dumps({"kept": True}), MessageGroupId="kept", MessageDeduplicationId="kept"
        )
        secret = aws.client("secretsmanager").get_secret_value(SecretId=aws.resources["ApiKeySecret"])["SecretString"]
        sfn = aws.client("stepfunctions")
        (execution,) = sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"]
        # One folder, one runtime: a second one is refused while the first holds it.
        with pytest.raises(DataDirError, match="another stepgraph server is using"):
            Persistence(tmp_path).hold()
    finally:
        first.stop()

    second = LocalRuntime(data_dir=tmp_path).start()
    try:
        api = ApiThread(api_app(second.ctx))
        assert httpx.get(f"{api.url}/threads/{thread_id}").json()["metadata"]["kept"] == "yes"
        assert httpx.get(f"{api.url}/threads/{thread_id}/state").json()["values"]["items"] == ["a", "b", "c"]
        runs = httpx.get(f"{api.url}/threads/{thread_id}/runs").json()
        assert [r["status"] for r in runs] == ["success"]
        crons = httpx.post(f"{api.url}/runs/crons/search", json={}).json()
        assert [c["cron_id"] for c in crons] == [cron["cron_id"]]
        kept = httpx.get(f"{api.url}/store/items", params={"namespace": "notes", "key": "kept"}).json()
        assert kept["value"] == {"text": "kept"}
        api.stop()
        aws = second.aws
        assert aws.client("s3").get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == b"kept"
        schedules = aws.client("scheduler").list_schedules()["Schedules"]  # the cron's, armed
        assert len(schedules) == 1 and schedules[0]["State"] == "ENABLED"
        messages = aws.client("sqs").receive_message(QueueUrl=dlq, WaitTimeSeconds=0)["Messages"]
        assert [json.loads(m["Body"]) for m in messages] == [{"kept": True}]
        sfn = aws.client("stepfunctions")
        assert sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "SUCCEEDED"
        history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
        assert history[-1]["type"] == "ExecutionSucceeded"
        # The generated API key is the same, under the ARN the environment names now.
        sm = aws.client("secretsmanager")
        assert sm.get_secret_value(SecretId=aws.resources["ApiKeySecret"])["SecretString"] == secret
    finally:
        second.stop()


def test_a_snapshot_that_cannot_be_read_stops_the_start_with_a_way_out(tmp_path):
    (tmp_path / SNAPSHOT_NAME).write_bytes(b"not a snapshot")
    with pytest.raises(DataDirError, match="--ephemeral"):
        LocalRuntime(data_dir=tmp_path).start()
    # The runtime that refused to start left nothing running: another one starts.
    LocalRuntime().start().stop()


def test_the_tables_journal_is_folded_into_the_snapshot_and_replayed_after_it(tmp_path, monkeypatch):
    """DynamoDB writes go to a journal, not to a snapshot each; past a size the journal is folded
    into the snapshot (compacted) and a new one starts. A restart replays what came after."""
    from stepgraph_local import persistence

    monkeypatch.setattr(persistence, "_COMPACT_BYTES", 20_000)
    first = LocalRuntime(data_dir=tmp_path).start()
    try:
        api = ApiThread(api_app(first.ctx))
        thread_id = httpx.post(f"{api.url}/threads", json={}).json()["thread_id"]
        body = {"assistant_id": "loop", "input": {"steps": 30}}
        assert httpx.post(f"{api.url}/threads/{thread_id}/runs/wait", json=body, timeout=30).json()["count"] == 30
        api.stop()
        journals = sorted(int(p.name.split(".")[1]) for p in tmp_path.glob("journal.*"))
        assert journals[0] > 2, journals  # compacted more than once: the first journals are gone
    finally:
        first.stop()
    second = LocalRuntime(data_dir=tmp_path).start()
    try:
        api = ApiThread(api_app(second.ctx))
        assert httpx.get(f"{api.url}/threads/{thread_id}/state").json()["values"] == {"count": 30, "steps": 30}
        history = httpx.post(f"{api.url}/threads/{thread_id}/history", json={"limit": 100}).json()
        assert len(history) == 32  # input, 30 supersteps, end: every checkpoint, none twice
        api.stop()
    finally:
        second.stop()
