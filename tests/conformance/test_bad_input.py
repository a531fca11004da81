"""Bad input gets a 4xx with the peer's `{"detail": ...}` body, and changes nothing.

One test per input that once made the server answer 500 or fail a run's step on every retry
(issue 9, found by hand and by tests/conformance/test_fuzz.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from cleanup import removing_what_is_created

BIG = "x" * 500_000  # over the 350,000-byte document limit (storage/documents.py), under 400 KB items


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with removing_what_is_created(server.url), httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def finished(client: httpx.Client) -> str:
    """A thread whose `chain` run has finished."""
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    out = client.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "chain", "input": {"items": []}})
    assert out.status_code == 200 and out.json()["items"] == ["a", "b", "c"]
    return thread_id


@pytest.fixture
def done(client) -> str:
    return finished(client)


def refused(response: httpx.Response, status: int = 422) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail
    return detail


def raw(client: httpx.Client, method: str, path: str, body: str) -> httpx.Response:
    return client.request(method, path, content=body, headers={"content-type": "application/json"})


def state_of(client: httpx.Client, thread_id: str) -> dict:
    return client.get(f"/threads/{thread_id}/state").json()


def test_history_limit_must_be_positive(client, done):
    refused(client.get(f"/threads/{done}/history", params={"limit": 0}))
    refused(client.get(f"/threads/{done}/history", params={"limit": -6086}))
    refused(client.post(f"/threads/{done}/history", json={"limit": 0}))
    assert len(client.get(f"/threads/{done}/history", params={"limit": 2}).json()) == 2
    assert len(client.get(f"/threads/{done}/history").json()) == 1  # the peer's default for GET


@pytest.mark.parametrize("delay", ["1e12", "Infinity", "NaN", "-1"])
def test_after_seconds_out_of_range_is_refused(client, delay):
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    refused(
        raw(client, "POST", f"/threads/{thread_id}/runs", '{"assistant_id": "chain", "after_seconds": ' + delay + "}")
    )
    assert client.get(f"/threads/{thread_id}/runs").json() == []
    assert client.get(f"/threads/{thread_id}").json()["status"] == "idle"


def test_json_nested_300_deep_is_refused(client, done):
    deep = "[" * 300 + "]" * 300
    before = state_of(client, done)
    detail = refused(
        raw(client, "POST", f"/threads/{done}/runs/wait", '{"assistant_id": "chain", "input": ' + deep + "}")
    )
    assert "nested" in detail
    assert state_of(client, done)["checkpoint"] == before["checkpoint"]
    refused(raw(client, "POST", "/threads", '{"metadata": ' + '{"a": ' * 300 + "1" + "}" * 300 + "}"))
    # What Python's json reads but no store can write (nor the peer's parser read) is refused too.
    refused(raw(client, "POST", "/threads", '{"metadata": {"n": ' + str(2**64) + "}}"))
    refused(raw(client, "POST", "/threads", '{"metadata": {"s": "\\ud800"}}'))


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"metadata": {"a": "\xff\xfe"}}', b"{nope"])
def test_unparsable_body_is_invalid_json(client, body):
    """Past the parser's recursion limit, not UTF-8, not JSON: the peer's 422."""
    response = client.post("/threads", content=body, headers={"content-type": "application/json"})
    assert refused(response) == "Invalid JSON in request body"


def test_update_state_values_its_reducer_refuses(client, done):
    before = state_of(client, done)
    refused(client.post(f"/threads/{done}/state", json={"values": {"items": 5}}), 400)
    assert state_of(client, done)["checkpoint"] == before["checkpoint"]


def test_update_state_with_unknown_node_is_refused(client, done):
    before = state_of(client, done)
    detail = refused(client.post(f"/threads/{done}/state", json={"values": {"items": ["z"]}, "as_node": "nope"}), 400)
    assert "nope" in detail
    assert state_of(client, done)["checkpoint"] == before["checkpoint"]


def test_malformed_checkpoint_references_are_refused(client, done):
    before = state_of(client, done)
    refused(client.post(f"/threads/{done}/history", json={"before": "xyz"}))
    refused(client.post(f"/threads/{done}/history", json={"before": {"checkpoint_id": 5}}))
    refused(client.post(f"/threads/{done}/history", json={"before": {"configurable": {"checkpoint_id": "x"}}}))
    refused(client.post(f"/threads/{done}/history", json={"checkpoint": {"checkpoint_id": [1]}}))
    refused(client.get(f"/threads/{done}/history", params={"before": "xyz"}))
    refused(client.post(f"/threads/{done}/state/checkpoint", json={"checkpoint": {"checkpoint_id": "zz"}}))
    refused(client.get(f"/threads/{done}/state/zz"))
    refused(client.post(f"/threads/{done}/state", json={"values": {}, "checkpoint": {"checkpoint_id": 3}}))
    refused(client.post(f"/threads/{done}/state", json={"values": {}, "checkpoint_id": "zz"}))
    refused(client.post(f"/threads/{done}/runs", json={"assistant_id": "chain", "checkpoint": {"checkpoint_id": "zz"}}))
    assert state_of(client, done)["checkpoint"] == before["checkpoint"]
    assert len(client.get(f"/threads/{done}/runs").json()) == 1
    # A well-formed reference still works.
    older = client.post(f"/threads/{done}/history", json={"before": before["checkpoint"]}).json()
    assert older and older[0]["checkpoint"]["checkpoint_id"] == before["parent_checkpoint"]["checkpoint_id"]


@pytest.mark.parametrize("mode", ["[[1]]", "[1]", "bogus", '["values", "bogus"]', "[unclosed"])
def test_join_stream_with_malformed_stream_mode_is_refused(client, done, mode):
    run_id = client.get(f"/threads/{done}/runs").json()[0]["run_id"]
    refused(client.get(f"/threads/{done}/runs/{run_id}/stream", params={"stream_mode": mode}))


def test_documents_over_the_item_limit_are_refused_with_413(client, done):
    """Stored documents are limited to 350,000 bytes (MAX_DOCUMENT_BYTES): refused, never half-written."""
    too_large = 413
    for body in ({"input": {"items": [BIG]}}, {"metadata": {"big": BIG}}, {"config": {"tags": [BIG]}}):
        assert "350000" in refused(
            client.post(f"/threads/{done}/runs", json={"assistant_id": "chain", **body}), too_large
        )
    assert len(client.get(f"/threads/{done}/runs").json()) == 1
    # Creating the thread on the way would leave it behind: nothing is written.
    fresh = "6b9d1f42-1f0e-4c4b-9a3e-2f6d1f2a9c01"
    refused(
        client.post(f"/threads/{fresh}/runs", json={"assistant_id": "chain", "if_not_exists": "create", "input": BIG}),
        too_large,
    )
    assert client.get(f"/threads/{fresh}").status_code == 404
    threads_before = client.post("/threads/count", json={}).json()
    refused(client.post("/runs/wait", json={"assistant_id": "chain", "input": {"items": [BIG]}}), too_large)
    refused(client.post("/threads", json={"metadata": {"big": BIG}}), too_large)
    assert client.post("/threads/count", json={}).json() == threads_before
    # Updates of existing resources: refused, the resource as it was.
    refused(client.patch(f"/threads/{done}", json={"metadata": {"big": BIG}}), too_large)
    assert "big" not in client.get(f"/threads/{done}").json()["metadata"]
    refused(client.post("/assistants", json={"graph_id": "chain", "config": {"configurable": {"big": BIG}}}), too_large)
    assistant = client.post("/assistants", json={"graph_id": "chain", "name": "small"}).json()
    refused(client.patch(f"/assistants/{assistant['assistant_id']}", json={"metadata": {"big": BIG}}), too_large)
    assert client.get(f"/assistants/{assistant['assistant_id']}").json() == assistant


def test_patch_assistant_never_writes_another_assistant(client):
    one = client.post("/assistants", json={"graph_id": "chain", "name": "one"}).json()
    two = client.post("/assistants", json={"graph_id": "chain", "name": "two"}).json()
    patched = client.patch(
        f"/assistants/{one['assistant_id']}",
        json={"assistant_id": two["assistant_id"], "name": "renamed", "version": 7},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["assistant_id"] == one["assistant_id"]
    assert patched.json()["name"] == "renamed" and patched.json()["version"] == 2
    assert client.get(f"/assistants/{two['assistant_id']}").json() == two
    assert [v["version"] for v in client.post(f"/assistants/{two['assistant_id']}/versions", json={}).json()] == [1]


@pytest.mark.parametrize("params", [{"limit": -1}, {"offset": -1}, {"limit": 0}, {"limit": "ten"}])
def test_run_list_with_negative_limit_or_offset_is_refused(client, done, params):
    refused(client.get(f"/threads/{done}/runs", params=params))


@pytest.mark.parametrize(
    "body",
    [
        {"command": {"goto": 5}},
        {"command": {"goto": {"input": 1}}},
        {"command": {"goto": [{"node": 3}]}},
        {"command": {"update": 5}},
        {"command": {"update": [[1, 2, 3]]}},
        {"input": {}, "config": {"recursion_limit": "x"}},
        {"input": {}, "config": {"recursion_limit": 0}},
        {"input": {}, "config": {"recursion_limit": 2.5}},
        {"input": {}, "config": {"configurable": 5}},
        {"input": {}, "config": {"tags": "not-a-list"}},
    ],
    ids=lambda body: json.dumps(body),
)
def test_malformed_command_or_config_is_refused_before_any_run(client, done, body):
    """The step would fail on every retry: the API refuses it and no run is queued."""
    before = state_of(client, done)
    refused(client.post(f"/threads/{done}/runs", json={"assistant_id": "chain", **body}))
    assert len(client.get(f"/threads/{done}/runs").json()) == 1
    assert client.get(f"/threads/{done}").json()["status"] == "idle"
    assert state_of(client, done)["checkpoint"] == before["checkpoint"]


def test_assistant_with_malformed_config_is_refused(client):
    refused(client.post("/assistants", json={"graph_id": "chain", "config": {"recursion_limit": "x"}}))
    assistant = client.post("/assistants", json={"graph_id": "chain", "config": {"recursion_limit": 5}}).json()
    assert assistant["config"] == {"recursion_limit": 5}
    refused(client.patch(f"/assistants/{assistant['assistant_id']}", json={"config": {"recursion_limit": -1}}))
    assert client.get(f"/assistants/{assistant['assistant_id']}").json() == assistant


def test_well_formed_command_still_resumes(client):
    """The stricter command model accepts what the SDK sends: resume, update pairs, goto sends."""
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    out = client.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "approval", "input": {}}).json()
    assert "__interrupt__" in out
    resumed = client.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "approval", "command": {"resume": "yes", "update": [["items", ["u"]]]}},
    )
    assert resumed.status_code == 200, resumed.text
    assert "__interrupt__" not in resumed.json() and "__error__" not in resumed.json()


@pytest.mark.parametrize("mode", ["batched", "strict"])
def test_a_run_whose_input_its_reducer_refuses_errs_and_leaves_the_thread_as_it_was(request, flavor, mode):
    # Strict mode commits the input checkpoint on its own and applies the input one invocation later.
    url = request.getfixturevalue("server" if mode == "batched" else "strict_server").url
    with removing_what_is_created(url), httpx.Client(base_url=url, timeout=30) as client:
        done = finished(client)
        before = state_of(client, done)
        out = client.post(f"/threads/{done}/runs/wait", json={"assistant_id": "chain", "input": {"items": 5}})
        assert out.status_code == 200 and out.json()["__error__"]["error"] == "TypeError"
        assert client.get(f"/threads/{done}").status_code == 200
        after = state_of(client, done)
        assert after["checkpoint"] == before["checkpoint"] and after["values"] == before["values"]
        # The thread still takes runs.
        again = client.post(f"/threads/{done}/runs/wait", json={"assistant_id": "chain", "input": {"items": ["z"]}})
        assert again.json()["items"] == ["a", "b", "c", "z", "a", "b", "c"]


def test_state_values_over_the_item_limit_spill_and_read_back(client, done):
    out = client.post(f"/threads/{done}/state", json={"values": {"items": [BIG]}, "as_node": "c"})
    assert out.status_code == 200, out.text
    assert state_of(client, done)["values"]["items"][-1] == BIG
    history = client.post(f"/threads/{done}/history", json={"limit": 2}).json()
    assert history[0]["values"]["items"][-1] == BIG


def test_a_resume_whose_update_its_reducer_refuses_errs_and_leaves_the_thread_interrupted(client):
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    client.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "approval", "input": {"items": ["x"]}})
    before = state_of(client, thread_id)
    bad = {"assistant_id": "approval", "command": {"resume": "yes", "update": {"items": 5}}}
    assert client.post(f"/threads/{thread_id}/runs/wait", json=bad).json()["__error__"]["error"] == "TypeError"
    after = state_of(client, thread_id)
    assert after["checkpoint"] == before["checkpoint"] and after["next"] == ["review"]
    good = {"assistant_id": "approval", "command": {"resume": "yes"}}
    out = client.post(f"/threads/{thread_id}/runs/wait", json=good).json()
    assert out["items"] == ["x", "draft", "review:yes", "published"]
