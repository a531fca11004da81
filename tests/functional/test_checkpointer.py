"""DynamoDBSaver against moto: LangGraph's conformance suite, the head compare-and-set that keeps a
duplicated superstep from forking a thread, lease fencing, S3 spill, and a real graph."""

from __future__ import annotations

import operator
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice, pairwise
from typing import Annotated, Any, TypedDict

import boto3
import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_config, generate_metadata
from langgraph.graph import END, START, StateGraph
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from stepgraph.storage.checkpoints import DynamoDBSaver, Fence, HeadConflict, LeaseCondition

REGION = "us-east-1"
CHECKPOINTS, THREADS, BUCKET = "CheckpointsTable", "ThreadsTable", "stepgraph-checkpoints"


def create_tables(ddb: Any) -> None:
    """The tables the saver touches, keyed as in template.yaml."""

    def table(name: str, *keys: tuple[str, str]) -> None:
        ddb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
        )

    table(CHECKPOINTS, ("pk", "HASH"), ("sk", "RANGE"))
    table(THREADS, ("thread_id", "HASH"))


def _serialize_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto checks a transaction's conditions, then applies it, with no lock, and rolls back by
    # restoring a table snapshot; DynamoDB serializes writes to an item. One lock models that.
    lock = threading.RLock()
    for name in ("transact_write_items", "put_item", "update_item", "delete_item", "batch_write_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(var, value)
    _serialize_moto_writes(monkeypatch)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        create_tables(ddb)
        s3.create_bucket(Bucket=BUCKET)
        yield ddb, s3


@pytest.fixture
def saver(aws: tuple[Any, Any]) -> DynamoDBSaver:
    ddb, s3 = aws
    return DynamoDBSaver(dynamodb_client=ddb, s3_client=s3, table=CHECKPOINTS, bucket=BUCKET)


def _objects(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def _put_child(saver: DynamoDBSaver, parent: dict, step: int, **values: Any) -> dict:
    versions = {k: saver.get_next_version(None, None) for k in values}
    cp = generate_checkpoint(channel_values=values, channel_versions=versions)
    return saver.put(parent, cp, generate_metadata(step=step), versions)


def _lease(run_id: str, thread_id: str = "t") -> LeaseCondition:
    return LeaseCondition(
        table=THREADS,
        key={"thread_id": {"S": thread_id}},
        expression="active_run_id = :r",
        values={":r": {"S": run_id}},
    )


# --- 1. conformance ---------------------------------------------------------------------------


async def test_conformance_suite(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws

    @checkpointer_test(name="DynamoDBSaver")
    async def factory():
        yield DynamoDBSaver(dynamodb_client=ddb, s3_client=s3, table=CHECKPOINTS, bucket=BUCKET)

    report = await validate(factory)
    failures = {cap: r.failures for cap, r in report.results.items() if r.passed is not True}
    if failures:
        report.print_report()
    assert not failures, failures
    assert {cap for cap, r in report.results.items() if r.detected} == {c.value for c in ALL_CAPABILITIES}
    assert report.conformance_level() == "FULL"
    assert sum(r.tests_passed for r in report.results.values()) > 50


# --- 2. a duplicated superstep commits once -----------------------------------------------------


def test_duplicated_superstep_commits_exactly_once(saver: DynamoDBSaver) -> None:
    root = _put_child(saver, generate_config("t"), -1, n=0)
    observed = saver.head("t")
    assert observed == root["configurable"]["checkpoint_id"]

    first, second = saver.fenced(Fence(observed)), saver.fenced(Fence(observed))
    won = _put_child(first, root, 0, n=1)
    with pytest.raises(HeadConflict) as info:
        _put_child(second, root, 0, n=1)
    assert info.value.reason == "head"

    children = [t for t in saver.list(generate_config("t")) if t.parent_config == root]
    assert [c.config for c in children] == [won]
    assert saver.head("t") == first.expected_head == won["configurable"]["checkpoint_id"]

    # The winner's expected head advanced, so the run keeps checkpointing; the loser stays out.
    nxt = _put_child(first, won, 1, n=2)
    assert saver.head("t") == nxt["configurable"]["checkpoint_id"]
    with pytest.raises(HeadConflict):
        _put_child(second, won, 1, n=2)
    assert len(list(saver.list(generate_config("t")))) == 3


def test_racing_invocations_have_one_winner(saver: DynamoDBSaver) -> None:
    root = _put_child(saver, generate_config("t"), -1, n=0)
    observed = saver.head("t")
    racers = 8
    barrier = threading.Barrier(racers)

    def invoke(i: int) -> str:
        fenced = saver.fenced(Fence(observed))
        barrier.wait()
        try:
            _put_child(fenced, root, 0, n=i)
            return "won"
        except HeadConflict as exc:
            return exc.reason

    with ThreadPoolExecutor(racers) as pool:
        outcomes = list(pool.map(invoke, range(racers)))
    assert sorted(outcomes) == ["head"] * (racers - 1) + ["won"]
    history = list(saver.list(generate_config("t")))
    assert len(history) == 2
    assert history[0].config["configurable"]["checkpoint_id"] == saver.head("t")


def test_first_checkpoint_of_a_new_thread_is_fenced_too(saver: DynamoDBSaver) -> None:
    a, b = saver.fenced(Fence(None)), saver.fenced(Fence(None))
    _put_child(a, generate_config("t"), -1)
    with pytest.raises(HeadConflict):
        _put_child(b, generate_config("t"), -1)
    assert len(list(saver.list(generate_config("t")))) == 1


def test_fork_is_fenced_against_the_observed_head_not_the_parent(saver: DynamoDBSaver) -> None:
    old = _put_child(saver, generate_config("t"), -1, n=0)
    head = _put_child(saver, old, 0, n=1)
    # Resuming from the older checkpoint: the parent is `old`, the head the run saw is `head`.
    fork = _put_child(saver.fenced(Fence(head["configurable"]["checkpoint_id"])), old, 1, n=5)
    assert saver.head("t") == fork["configurable"]["checkpoint_id"]
    assert saver.get_tuple(fork).parent_config == old
    with pytest.raises(HeadConflict):  # a run that saw `old` as the head is stale
        _put_child(saver.fenced(Fence(old["configurable"]["checkpoint_id"])), old, 1, n=6)


# --- 3. lease fencing ---------------------------------------------------------------------------


def test_run_without_the_lease_writes_nothing(saver: DynamoDBSaver, aws: tuple[Any, Any]) -> None:
    ddb, _ = aws
    ddb.put_item(TableName=THREADS, Item={"thread_id": {"S": "t"}, "active_run_id": {"S": "r2"}})

    with pytest.raises(HeadConflict) as info:
        _put_child(saver.fenced(Fence(None, _lease("r1"))), generate_config("t"), -1, n=0)
    assert info.value.reason == "lease"
    assert saver.head("t") is None
    assert list(saver.list(generate_config("t"))) == []
    items = ddb.query(
        TableName=CHECKPOINTS, KeyConditionExpression="pk = :t", ExpressionAttributeValues={":t": {"S": "t"}}
    )
    assert items["Count"] == 0

    owner = saver.fenced(Fence(None, _lease("r2")))
    cfg = _put_child(owner, generate_config("t"), -1, n=0)
    assert saver.head("t") == cfg["configurable"]["checkpoint_id"]

    # The lease moves on: the old holder can no longer checkpoint, even from the current head.
    ddb.put_item(TableName=THREADS, Item={"thread_id": {"S": "t"}, "active_run_id": {"S": "r3"}})
    with pytest.raises(HeadConflict) as info:
        _put_child(owner, cfg, 0, n=1)
    assert info.value.reason == "lease"


# --- 4. spill to S3 -----------------------------------------------------------------------------


def test_large_values_spill_to_s3_and_round_trip(saver: DynamoDBSaver, aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    big = "x" * 500_000
    cfg = _put_child(saver, generate_config("t"), -1, big=big)
    cid = cfg["configurable"]["checkpoint_id"]
    item = ddb.get_item(TableName=CHECKPOINTS, Key={"pk": {"S": "t"}, "sk": {"S": f"C##{cid}"}})["Item"]
    assert "data" not in item
    assert s3.head_object(Bucket=BUCKET, Key=item["s3_key"]["S"])["ContentLength"] > 500_000
    assert saver.get_tuple(generate_config("t")).checkpoint["channel_values"]["big"] == big

    saver.put_writes(cfg, [("big", big), ("small", 1)], "task-1")
    tup = saver.get_tuple(cfg)
    assert tup.pending_writes == [("task-1", "big", big), ("task-1", "small", 1)]
    assert len(_objects(s3)) == 2

    # A duplicate task's write loses to the stored one and leaves no object behind.
    saver.put_writes(cfg, [("big", "y" * 500_000)], "task-1")
    assert saver.get_tuple(cfg).pending_writes[0][2] == big
    assert len(_objects(s3)) == 2

    # So does a losing fenced put.
    with pytest.raises(HeadConflict):
        _put_child(saver.fenced(Fence(None)), cfg, 0, big=big)
    assert len(_objects(s3)) == 2

    saver.delete_thread("t")
    assert _objects(s3) == []
    assert saver.get_tuple(generate_config("t")) is None


# --- 5. a real graph ----------------------------------------------------------------------------


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def _builder(*nodes: str) -> StateGraph:
    builder = StateGraph(State)
    for name in nodes:
        builder.add_node(name, lambda _, name=name: {"steps": [name]})
    for a, b in zip((START, *nodes), (*nodes, END)):
        builder.add_edge(a, b)
    return builder


def test_graph_runs_to_completion(saver: DynamoDBSaver) -> None:
    graph = _builder("a", "b", "c").compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "g"}}
    assert graph.invoke({"steps": []}, config)["steps"] == ["a", "b", "c"]
    history = list(graph.get_state_history(config))
    assert len(history) == 5
    assert [h.metadata["step"] for h in history] == [3, 2, 1, 0, -1]
    assert saver.head("g") == history[0].config["configurable"]["checkpoint_id"]


async def test_fenced_graph_run_with_a_subgraph(saver: DynamoDBSaver, aws: tuple[Any, Any]) -> None:
    ddb, _ = aws
    ddb.put_item(TableName=THREADS, Item={"thread_id": {"S": "g"}, "active_run_id": {"S": "r1"}})
    inner = _builder("inner").compile()
    builder = StateGraph(State)
    builder.add_node("a", lambda _: {"steps": ["a"]})
    builder.add_node("sub", inner)
    builder.add_edge(START, "a")
    builder.add_edge("a", "sub")
    builder.add_edge("sub", END)
    config = {"configurable": {"thread_id": "g"}}

    fenced = saver.fenced(Fence(None, _lease("r1", "g")))
    result = await builder.compile(checkpointer=fenced).ainvoke({"steps": []}, config)
    assert result["steps"] == ["a", "a", "inner"]  # the subgraph returns its whole state
    assert fenced.expected_head == saver.head("g")
    heads = [i["sk"]["S"] for i in ddb.scan(TableName=CHECKPOINTS)["Items"] if i["sk"]["S"].startswith("H#")]
    assert len(heads) == 2 and "H#" in heads  # the subgraph checkpointed in its own namespace

    # A duplicate of that run, which also saw an empty thread, cannot write.
    with pytest.raises(HeadConflict):
        await builder.compile(checkpointer=saver.fenced(Fence(None, _lease("r1", "g")))).ainvoke({"steps": []}, config)
    assert len([s async for s in builder.compile(checkpointer=saver).aget_state_history(config)]) == 4


# --- 6. group commit (batched mode) -------------------------------------------------------------

HOUR = 3600.0  # a linger no test waits out: only commit() (or a full transaction) writes


def _loop(steps: int) -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("tick", lambda s: {"steps": [str(len(s["steps"]))]})
    builder.add_edge(START, "tick")
    builder.add_conditional_edges("tick", lambda s: "tick" if len(s["steps"]) < steps else END, ["tick", END])
    return builder


def _items(ddb: Any, thread_id: str) -> int:
    return ddb.query(
        TableName=CHECKPOINTS,
        KeyConditionExpression="pk = :t",
        ExpressionAttributeValues={":t": {"S": thread_id}},
        Select="COUNT",
    )["Count"]


def test_group_commit_writes_nothing_until_commit_then_every_checkpoint(
    saver: DynamoDBSaver, aws: tuple[Any, Any]
) -> None:
    ddb, _ = aws
    ddb.put_item(TableName=THREADS, Item={"thread_id": {"S": "g"}, "active_run_id": {"S": "r1"}})
    fenced = saver.fenced(Fence(None, _lease("r1", "g"), linger_seconds=HOUR))
    config = {"configurable": {"thread_id": "g"}}
    steps = 120  # ~240 items with their writes: more than one transaction holds
    stream = _loop(steps).compile(checkpointer=fenced).stream({"steps": []}, config, durability="sync")
    for _ in islice(stream, 60):
        pass
    assert _items(ddb, "g") < 120, "a full transaction's worth at most is written before commit()"
    for _ in stream:
        pass
    fenced.commit()
    history = list(saver.list(config))
    assert [t.metadata["step"] for t in history] == list(range(steps, -2, -1))  # every superstep
    for child, parent in pairwise(history):
        assert child.parent_config == parent.config  # one unbroken chain, newest first
    assert saver.head("g") == fenced.expected_head == history[0].config["configurable"]["checkpoint_id"]
    assert len(history[0].checkpoint["channel_values"]["steps"]) == steps


def test_group_commit_lingers_no_longer_than_asked(saver: DynamoDBSaver) -> None:
    fenced = saver.fenced(Fence(None, linger_seconds=0.05))
    cfg = _put_child(fenced, generate_config("t"), -1, n=0)
    fenced.put_writes(cfg, [("n", 1)], "task-1")
    assert saver.head("t") is None  # still waiting for company
    deadline = time.monotonic() + 5
    while saver.head("t") is None:  # written in the background, with no further call
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert saver.get_tuple(cfg).pending_writes == [("task-1", "n", 1)]


def test_group_commit_of_a_duplicate_invocation_loses_whole(saver: DynamoDBSaver, aws: tuple[Any, Any]) -> None:
    _, s3 = aws
    root = _put_child(saver, generate_config("t"), -1, n=0)
    observed = saver.head("t")
    first, second = (saver.fenced(Fence(observed, linger_seconds=HOUR)) for _ in range(2))
    for fenced in (first, second):
        cfg = _put_child(fenced, root, 0, n=1)
        fenced.put_writes(cfg, [("n", 2), ("big", "x" * 500_000)], "task-1")  # one spilled to S3
        _put_child(fenced, cfg, 1, n=2)
    first.commit()
    with pytest.raises(HeadConflict) as info:
        second.commit()
    assert info.value.reason == "head"
    history = list(saver.list(generate_config("t")))
    assert [t.metadata["step"] for t in history] == [1, 0, -1]  # the loser wrote none of its three
    assert len(_objects(s3)) == 1  # and removed the object it had spilled
    second.commit()  # what lost is gone, not retried
    assert len(list(saver.list(generate_config("t")))) == 3


def test_group_commit_after_the_lease_moved_writes_nothing(saver: DynamoDBSaver, aws: tuple[Any, Any]) -> None:
    ddb, _ = aws
    ddb.put_item(TableName=THREADS, Item={"thread_id": {"S": "t"}, "active_run_id": {"S": "r1"}})
    fenced = saver.fenced(Fence(None, _lease("r1"), linger_seconds=HOUR))
    cfg = _put_child(fenced, generate_config("t"), -1, n=0)
    fenced.commit()
    _put_child(fenced, cfg, 0, n=1)  # computed before the cancel, committed after it
    ddb.put_item(TableName=THREADS, Item={"thread_id": {"S": "t"}})  # the run is cancelled
    with pytest.raises(HeadConflict) as info:
        fenced.commit()
    assert info.value.reason == "lease"
    assert [t.config for t in saver.list(generate_config("t"))] == [cfg]


def test_group_commit_keeps_a_stored_write_and_commits_the_rest(saver: DynamoDBSaver) -> None:
    root = _put_child(saver, generate_config("t"), -1, n=0)
    saver.put_writes(root, [("n", "first")], "task-1")  # an earlier invocation's result
    fenced = saver.fenced(Fence(saver.head("t"), linger_seconds=HOUR))
    fenced.put_writes(root, [("n", "again")], "task-1")
    fenced.put_writes(root, [("n", "other")], "task-2")
    child = _put_child(fenced, root, 0, n=1)
    fenced.commit()
    assert saver.head("t") == child["configurable"]["checkpoint_id"]
    assert sorted(saver.get_tuple(root).pending_writes) == [("task-1", "n", "first"), ("task-2", "n", "other")]


def test_reads_through_a_grouping_saver_see_its_own_writes(saver: DynamoDBSaver) -> None:
    fenced = saver.fenced(Fence(None, linger_seconds=HOUR))
    cfg = _put_child(fenced, generate_config("t"), -1, n=7)
    assert fenced.get_tuple(generate_config("t")).config == cfg
    assert saver.head("t") == cfg["configurable"]["checkpoint_id"]


def test_strict_grouping_commits_each_put_at_once_with_the_writes_before_it(saver: DynamoDBSaver) -> None:
    root = _put_child(saver, generate_config("t"), -1, n=0)
    fenced = saver.fenced(Fence(saver.head("t"), linger_seconds=HOUR, linger_puts=False))
    fenced.put_writes(root, [("n", 1)], "task-1")
    assert saver.get_tuple(root).pending_writes == []  # a write waits for its superstep's checkpoint
    child = _put_child(fenced, root, 0, n=1)
    assert saver.head("t") == child["configurable"]["checkpoint_id"]  # the put did not wait
    assert saver.get_tuple(root).pending_writes == [("task-1", "n", 1)]  # and took the write along
