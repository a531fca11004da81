"""The parts of the Agent Server's auth contract that are pure data: what a filter an
authorization handler returns lets through, how the user `authenticate` returns is kept on a
run, and that only the server says who a run's user is."""

from __future__ import annotations

import pytest
from stepgraph.engine import AuthUser, matches_filter, metadata_filter, user_fields
from stepgraph.engine.runner import run_config

METADATA = {"owner": "a", "members": ["a", "b"], "level": 3}


@pytest.mark.parametrize(
    "filters,passes",
    [
        ({}, True),
        ({"owner": "a"}, True),
        ({"owner": {"$eq": "a"}}, True),
        ({"owner": "b"}, False),
        ({"missing": "a"}, False),
        ({"members": {"$contains": "b"}}, True),
        ({"members": {"$contains": ["b", "a"]}}, True),
        ({"members": {"$contains": ["a", "c"]}}, False),
        ({"owner": {"$contains": "a"}}, False),  # not a list: nothing to contain
        ({"owner": "a", "members": {"$contains": "c"}}, False),  # keys AND
        ({"level": 3, "owner": {"$eq": "a"}}, True),
    ],
)
def test_filters_are_the_peers(filters, passes):
    assert matches_filter(METADATA, metadata_filter(filters)) is passes


def test_a_mistyped_operator_is_an_error_not_a_silent_match():
    for bad in ({"owner": {"$ne": "a"}}, {"owner": {}}):
        with pytest.raises(ValueError, match="operators are"):
            metadata_filter(bad)


class Person:
    identity = "p"
    permissions = ("read",)

    def model_dump(self) -> dict:
        return {"team": "x"}


def test_what_authenticate_returns_becomes_the_users_fields():
    assert user_fields("u") == {"identity": "u", "display_name": "u", "is_authenticated": True, "permissions": []}
    fields = user_fields({"identity": "d", "permissions": ["w"], "org": "acme"})
    assert fields == {
        "identity": "d",
        "display_name": "d",
        "is_authenticated": True,
        "permissions": ["w"],
        "org": "acme",
    }
    assert user_fields(Person())["team"] == "x" and user_fields(Person())["permissions"] == ["read"]
    for nobody in (None, {"name": "no identity"}, {"identity": ""}):
        with pytest.raises(TypeError):
            user_fields(nobody)
    user = AuthUser(fields)
    assert (user.identity, user["org"], user.org, user.permissions, dict(user)) == ("d", "acme", "acme", ["w"], fields)


def test_only_the_server_names_a_runs_user():
    forged = {"langgraph_auth_user_id": "admin", "langgraph_auth_permissions": ["all"], "langgraph_auth_user": {}}
    run = {
        "thread_id": "t",
        "run_id": "r",
        "assistant_id": "a",
        "graph_id": "g",
        "kwargs": {"config": {"configurable": {**forged, "mine": 1}}},
    }
    anonymous = run_config(run, {"config": {"configurable": forged}})["configurable"]
    assert not set(forged) & set(anonymous) and anonymous["mine"] == 1
    authenticated = run_config({**run, "auth_user": user_fields("u")}, None)["configurable"]
    assert authenticated["langgraph_auth_user_id"] == authenticated["user_id"] == "u"
    assert authenticated["langgraph_auth_user"].identity == "u" and authenticated["langgraph_auth_permissions"] == []
