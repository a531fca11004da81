"""Configuration as data: every knob read once from STEPGRAPH_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"STEPGRAPH_{name}", default)


@dataclass(frozen=True)
class Settings:
    checkpoints_table: str = "CheckpointsTable"
    assistants_table: str = "AssistantsTable"
    threads_table: str = "ThreadsTable"
    runs_table: str = "RunsTable"
    events_table: str = "EventsTable"
    spill_bucket: str = "spill"
    run_queue_url: str = ""
    state_machine_arn: str = ""
    # Rings a thread's doorbell after a wait: how a run created with after_seconds gets admitted.
    delay_state_machine_arn: str = ""
    config_path: str = "langgraph.json"
    step_mode: str = "batched"  # "strict": one superstep per Step invocation
    step_budget_ms: int = 10_000
    # Batched mode: how long a checkpoint may wait for later ones to share its commit (one
    # transaction). What a crash or a cancel can lose beyond the superstep in flight.
    commit_linger_ms: int = 20
    event_ttl_seconds: int = 86_400
    # SSE comment sent on a stream that has been silent this long (the peer: 5 s).
    heartbeat_seconds: float = 5.0
    # Checkpoint/event values above this many bytes go to S3 (DynamoDB items stop at 400 KB).
    spill_threshold_bytes: int = 350_000
    region: str = "us-east-1"
    endpoint_url: str | None = None
    # The local runtime's emulated AWS checks no signatures; skipping SigV4 saves ~20% per call.
    sign_requests: bool = True

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            checkpoints_table=_env("CHECKPOINTS_TABLE", cls.checkpoints_table),
            assistants_table=_env("ASSISTANTS_TABLE", cls.assistants_table),
            threads_table=_env("THREADS_TABLE", cls.threads_table),
            runs_table=_env("RUNS_TABLE", cls.runs_table),
            events_table=_env("EVENTS_TABLE", cls.events_table),
            spill_bucket=_env("SPILL_BUCKET", cls.spill_bucket),
            run_queue_url=_env("RUN_QUEUE_URL"),
            state_machine_arn=_env("STATE_MACHINE_ARN"),
            delay_state_machine_arn=_env("DELAY_STATE_MACHINE_ARN"),
            config_path=_env("CONFIG", cls.config_path),
            step_mode=_env("STEP_MODE", cls.step_mode),
            step_budget_ms=int(_env("STEP_BUDGET_MS", str(cls.step_budget_ms))),
            commit_linger_ms=int(_env("COMMIT_LINGER_MS", str(cls.commit_linger_ms))),
            event_ttl_seconds=int(_env("EVENT_TTL_SECONDS", str(cls.event_ttl_seconds))),
            heartbeat_seconds=float(_env("HEARTBEAT_SECONDS", str(cls.heartbeat_seconds))),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or cls.region,
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            sign_requests=_env("SIGN_REQUESTS", "1") != "0",
        )


@dataclass
class Clients:
    """boto3 clients for one process, created on first use (never at import)."""

    settings: Settings
    _cache: dict[str, Any] = field(default_factory=dict)

    def _client(self, service: str) -> Any:
        if service not in self._cache:
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=64)
            if not self.settings.sign_requests:
                config = config.merge(Config(signature_version=UNSIGNED))
            self._cache[service] = boto3.client(
                service,
                region_name=self.settings.region,
                endpoint_url=self.settings.endpoint_url,
                config=config,
            )
        return self._cache[service]

    @cached_property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @cached_property
    def s3(self) -> Any:
        return self._client("s3")

    @cached_property
    def sqs(self) -> Any:
        return self._client("sqs")

    @cached_property
    def sfn(self) -> Any:
        return self._client("stepfunctions")
