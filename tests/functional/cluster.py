"""The split local runtime for fault tests: `stepgraph aws` (moto server, state machine, Lambda
hook) and `stepgraph worker` (the handlers) as two processes, so the worker can be killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from unittest import mock

from harness import stop_process
from stepgraph.engine.context import Context
from stepgraph.settings import Settings
from stepgraph_local import iam
from stepgraph_local.split import free_port

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "tests" / "graphs" / "langgraph.json"
FAULTY_AWS = Path(__file__).with_name("faulty_aws.py")


class Cluster:
    def __init__(self, *, config: Path = GRAPHS, step_mode: str = "strict", worker_env: dict[str, str] | None = None):
        """`worker_env`: variables of the user's environment the worker is started with."""
        self.dir = Path(tempfile.mkdtemp(prefix="stepgraph-cluster-"))
        self.aws_port, self.worker_port = free_port(), free_port()
        self.env_file, self.faults_file = self.dir / "env.json", self.dir / "faults.json"
        self.config, self.step_mode, self.worker_env = config, step_mode, worker_env or {}
        self.aws: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.worker_starts = 0

    # ------------------------------------------------------------------ processes
    def _spawn(self, args: list[str], log: str, extra: dict[str, str] | None = None) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPGRAPH_", "MOTO_"))}
        if iam.LOG_VARIABLE in os.environ:  # the session's IAM record (functional/conftest.py)
            env[iam.LOG_VARIABLE] = os.environ[iam.LOG_VARIABLE]
        env["STEPGRAPH_TEST_FAULTS"] = str(self.faults_file)
        env.update(extra or {})
        with open(self.dir / log, "a") as out:  # the child writes through its own descriptor
            return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> Cluster:
        self.aws = self._spawn(
            [
                str(FAULTY_AWS),
                "aws",
                "--port",
                str(self.aws_port),
                "--worker-url",
                self.worker_url,
                "--env-file",
                str(self.env_file),
                "--config",
                str(self.config),
                "--step-mode",
                self.step_mode,
            ],
            "aws.log",
        )
        self._until(self.env_file.exists, "stepgraph aws did not start", self.aws)
        self.env = json.loads(self.env_file.read_text())
        # The test's own context talks to the server as the worker's does (STEPGRAPH_* settings).
        with mock.patch.dict(os.environ, self.env):
            self.ctx = Context(Settings.from_env())
        self.start_worker()
        return self

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}"

    def start_worker(self) -> None:
        self.worker = self._spawn(
            ["-m", "stepgraph_local.cli", "worker", "--port", str(self.worker_port), "--env-file", str(self.env_file)],
            "worker.log",
            self.worker_env,
        )
        self.worker_starts += 1
        self._until(self._worker_ok, "stepgraph worker did not start", self.worker)

    def kill_worker(self) -> None:
        """SIGKILL: the worker dies mid-invocation, as a Lambda sandbox does."""
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()

    def stop(self) -> None:
        for proc in (self.worker, self.aws):
            if proc is not None and proc.poll() is None:
                stop_process(proc)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.dir.glob("*.log")))

    def _worker_ok(self) -> bool:
        try:
            with urllib.request.urlopen(self.worker_url + "/ok", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def _until(self, ready, message: str, proc: subprocess.Popen, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if proc.poll() is not None:
                raise RuntimeError(f"{message}:\n{self.logs()}")
            time.sleep(0.05)
        raise RuntimeError(f"{message} in {timeout}s:\n{self.logs()}")

    # ------------------------------------------------------------------ faults and clients
    def throttle(self, rule: dict[str, Any] | None) -> None:
        self.faults_file.write_text(json.dumps(rule))
        self.faults_file.with_suffix(".out").unlink(missing_ok=True)

    def throttled(self) -> int:
        out = self.faults_file.with_suffix(".out")
        return json.loads(out.read_text())["injected"] if out.exists() else 0

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.env["STEPGRAPH_ENDPOINT_URL"],
            region_name=self.env["STEPGRAPH_REGION"],
            aws_access_key_id=self.env["STEPGRAPH_AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["STEPGRAPH_AWS_SECRET_ACCESS_KEY"],
        )
