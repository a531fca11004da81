"""A real `stepgraph dev` server in a subprocess, on a free port: for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "langgraph.json"
FLAVORS = ("sync", "async")  # how the example and test graphs write their nodes (examples/flavors.py)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(predicate: Callable[[], T], timeout: float, what: str = "condition") -> T:
    """The first truthy value of `predicate`, polled every 10 ms; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate, then kill if it has not gone within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ApiThread:
    """An ASGI app under uvicorn in a thread of this process, on a free port (one API instance)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        until(lambda: self.server.started, 10, "uvicorn to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


class Server:
    def __init__(
        self,
        *args: str,
        config: Path = EXAMPLES,
        env: dict[str, str] | None = None,
        flavor: str = "sync",
        cli: tuple[str, ...] = ("-m", "stepgraph_local.cli"),  # what python runs: the module, or a wrapper script
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            *cli,
            "dev",
            "--config",
            str(config),
            "--port",
            str(self.port),
            "--no-browser",  # a test run on a desktop must not open Studio tabs
            # Servers of the suite share config folders: each keeps its state in memory unless
            # a test gives it a data folder.
            *(() if "--data-dir" in args else ("--ephemeral",)),
            *args,
        ]
        # A file, not a pipe: a chatty server must never block on a full pipe. The child writes it
        # through its own descriptor; the file goes when this Server does.
        fd, log = tempfile.mkstemp(prefix="stepgraph-server-", suffix=".log")
        self.log = Path(log)
        weakref.finalize(self, self.log.unlink, missing_ok=True)
        # Spans recorded as `stepgraph dev` records them, to a file of this server's own
        # (tests/conformance/test_sdk_tracing.py reads it).
        self.trace_file = self.log.with_suffix(".traces.jsonl")
        weakref.finalize(self, self.trace_file.unlink, missing_ok=True)
        with os.fdopen(fd, "w") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={
                    **os.environ,
                    "EXAMPLE_NODES": flavor,
                    "STEPGRAPH_TRACE_FILE": str(self.trace_file),
                    **(env or {}),
                },
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def read_output(self) -> str:
        return self.log.read_text()

    def wait_ready(self, timeout: float = 60) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.read_output()}")
            try:
                if httpx.get(self.url + "/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def stop(self) -> str:
        stop_process(self.proc)
        return self.read_output()


@asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str] | None = None, app: Any = None) -> AsyncIterator[Any]:
    """An initialized `mcp` SDK `ClientSession` on `url` + `/mcp` over Streamable HTTP, as an MCP
    host opens one; with `app`, to that ASGI app in this process."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    transport = httpx2.ASGITransport(app=app) if app is not None else None
    async with (
        httpx2.AsyncClient(headers=headers or {}, timeout=60, transport=transport) as http,
        streamable_http_client(url + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session
