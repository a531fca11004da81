"""Clients beyond the Python SDK against `stepgraph dev`: the JavaScript SDK (`tests/js`, run with
Node's own test runner) and LangGraph Studio in a browser (its link, CORS for its origin)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import httpx
import pytest
from harness import ROOT, Server

JS = ROOT / "tests" / "js"
STUDIO = "https://smith.langchain.com"


def _node_modules() -> None:
    """`npm ci` from the lockfile, once per lockfile: node_modules keeps a stamp of it."""
    lock = hashlib.sha256((JS / "package-lock.json").read_bytes()).hexdigest()
    stamp = JS / "node_modules" / ".stepgraph-lock-sha256"
    if stamp.is_file() and stamp.read_text() == lock:
        return
    npm = subprocess.run(
        ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert npm.returncode == 0, f"npm ci failed:\n{npm.stdout}\n{npm.stderr}"
    stamp.write_text(lock)


def test_the_javascript_sdk_drives_the_dev_server(server: Server) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js 20+ with npm is needed for the JavaScript SDK test (tests/js)")
    _node_modules()
    node = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "sdk.test.mjs"],
        cwd=JS,
        env={**os.environ, "STEPGRAPH_URL": server.url, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert node.returncode == 0, f"node --test failed:\n{node.stdout}\n{node.stderr}"
    assert "pass 1" in node.stdout and "fail 0" in node.stdout, node.stdout


def test_studio_in_a_browser_may_call_the_dev_server(server: Server) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key",
        "Access-Control-Request-Private-Network": "true",  # Chrome: a public page calling 127.0.0.1
    }
    answer = httpx.options(f"{server.url}/threads/search", headers={"Origin": STUDIO, **preflight})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == STUDIO
    assert answer.headers["access-control-allow-private-network"] == "true"
    assert "x-api-key" in answer.headers["access-control-allow-headers"]
    listed = httpx.post(f"{server.url}/threads/search", json={}, headers={"Origin": STUDIO})
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == STUDIO
    assert "X-Pagination-Total" in listed.headers["access-control-expose-headers"]

    # Any other page the browser opens gets no leave to drive a server that asks no API key.
    other = httpx.options(f"{server.url}/threads/search", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    assert (
        "access-control-allow-origin"
        not in httpx.get(f"{server.url}/ok", headers={"Origin": "https://evil.example"}).headers
    )

    # The link the peer prints, pointed at this server.
    assert f"{STUDIO}/studio/?baseUrl=http://127.0.0.1:{server.port}" in server.read_output()
