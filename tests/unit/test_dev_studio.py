"""`stepgraph dev` and LangGraph Studio: when a browser opens, which origins CORS lets in, and the
link, as pure functions of the environment and langgraph.json's `http.cors`."""

from __future__ import annotations

import sys

import pytest
from stepgraph_local.studio import STUDIO_ORIGIN, dev_cors, should_open_browser, studio_url


@pytest.mark.parametrize(
    "no_browser,env,opens",
    [
        (True, {"DISPLAY": ":0"}, False),  # --no-browser
        (False, {"DISPLAY": ":0", "CI": "true"}, False),  # CI never opens one
        (False, {"DISPLAY": ":0"}, True),
        (False, {"WAYLAND_DISPLAY": "wayland-0"}, True),
    ],
)
def test_studio_opens_only_where_someone_can_see_it(no_browser: bool, env: dict[str, str], opens: bool) -> None:
    assert should_open_browser(no_browser, env) is opens


@pytest.mark.skipif(sys.platform != "linux", reason="a headless Linux machine has no display variable")
def test_a_headless_linux_machine_opens_no_browser() -> None:
    assert should_open_browser(False, {}) is False


def test_studio_origin_alone_without_http_cors_and_merged_into_it() -> None:
    assert dev_cors(None)["allow_origins"] == [STUDIO_ORIGIN]
    mine = {"allow_origins": ["https://app.example"], "allow_headers": ["x-api-key"]}
    merged = dev_cors(mine)
    assert merged["allow_origins"] == ["https://app.example", STUDIO_ORIGIN]
    assert merged["allow_headers"] == ["x-api-key"]  # the project's own settings otherwise stand
    assert mine["allow_origins"] == ["https://app.example"]  # not changed in place
    assert dev_cors({"allow_origins": ["*"]})["allow_origins"] == ["*"]


def test_the_studio_link_points_at_the_server_as_the_peer_prints_it() -> None:
    assert studio_url("127.0.0.1", 2024) == "https://smith.langchain.com/studio/?baseUrl=http://127.0.0.1:2024"
    assert studio_url("0.0.0.0", 8123) == "https://smith.langchain.com/studio/?baseUrl=http://127.0.0.1:8123"
    assert studio_url("::1", 2024) == "https://smith.langchain.com/studio/?baseUrl=http://[::1]:2024"
