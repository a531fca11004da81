"""Configuration as data: every knob read once from STEPGRAPH_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # botocore loads on first use, not at import
    from botocore.config import Config

# Names stepgraph's own AWS calls (User-Agent `app/stepgraph`); the local runtime's emulator
# answers these calls only, so a graph node's own boto3 clients stay the user's.
APP_ID = "stepgraph"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"STEPGRAPH_{name}", default)


def client_config(extra: Config | None = None) -> Config:
    """The botocore Config of every client stepgraph builds for itself (`extra` merged in)."""
    from botocore.config import Config

    # Passed as a dict: botocore has both options, botocore-stubs' Config does not (yet).
    options: dict[str, Any] = {
        "user_agent_appid": APP_ID,
        # AWS_ENDPOINT_URL_<SERVICE> and endpoints in ~/.aws/config are the user's, for the
        # user's clients: stepgraph's go to Settings.endpoint_url or AWS's own endpoints.
        "ignore_configured_endpoint_urls": True,
    }
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=64, **options)
    return config.merge(extra) if extra is not None else config


# Any, not boto3.Session: its clients are asked for by a service name known at run time, which
# boto3-stubs types only for literal names.
_own_session: Any = None


def own_session() -> Any:
    """A boto3 session that reads none of the process's AWS configuration (no AWS_* variable,
    profile or config file): for stepgraph's clients given their own credentials and region, so
    the user's setup (AWS_PROFILE, ~/.aws) neither reaches nor breaks them. One per process: it
    keeps the parsed service models."""
    global _own_session
    if _own_session is None:
        import boto3
        import botocore.session
        from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES

        isolated = {
            name: (None, None, default, convert)
            for name, (_, _, default, convert) in BOTOCORE_DEFAUT_SESSION_VARIABLES.items()
        }
        isolated["config_file"] = isolated["credentials_file"] = (None, None, os.devnull, None)
        _own_session = boto3.Session(botocore_session=botocore.session.Session(session_vars=isolated))
    return _own_session


LOCALSTACK = "localstack"


def endpoint_for(endpoint_url: str | None, service: str) -> str | None:
    """The endpoint of `service` for the `endpoint_url` setting (None: AWS's own)."""
    if endpoint_url != LOCALSTACK:
        return endpoint_url
    try:
        from localstack_client.config import get_service_endpoint
    except ImportError:
        raise RuntimeError(
            "STEPGRAPH_ENDPOINT_URL=localstack needs localstack-client: pip install 'stepgraph[localstack]'"
        ) from None
    endpoint: str | None = get_service_endpoint(service)
    if endpoint is None:
        raise RuntimeError(f"localstack-client knows no endpoint for {service}")
    return endpoint


@dataclass(frozen=True)
class Settings:
    checkpoints_table: str = "CheckpointsTable"
    assistants_table: str = "AssistantsTable"
    threads_table: str = "ThreadsTable"
    runs_table: str = "RunsTable"
    events_table: str = "EventsTable"
    store_table: str = "StoreTable"  # the long-term store (storage/store.py)
    crons_table: str = "CronsTable"
    spill_bucket: str = "spill"
    run_queue_url: str = ""
    state_machine_arn: str = ""
    # Rings a thread's doorbell after a wait: how a run created with after_seconds gets admitted.
    delay_state_machine_arn: str = ""
    # Crons: each is a schedule of this EventBridge Scheduler group, whose target (the cron
    # function) EventBridge invokes as this role: what the API arms schedules with. The cron
    # function re-arms with the schedule's own (it cannot be named in its own environment).
    schedule_group: str = "default"
    cron_function_arn: str = ""
    scheduler_role_arn: str = ""
    config_path: str = "langgraph.json"
    step_mode: str = "batched"  # "strict": one superstep per Step invocation
    step_budget_ms: int = 10_000
    # Batched mode: how long a checkpoint may wait for later ones to share its commit (one
    # transaction). What a crash or a cancel can lose beyond the superstep in flight.
    commit_linger_ms: int = 20
    event_ttl_seconds: int = 86_400
    # Step invocations (and park/resume cycles) after which a run goes on in a fresh execution,
    # far below a Standard execution's 25,000 history events (the arithmetic: engine/handover.py).
    handover_after: int = 2_000
    # A due pending run on a free thread this old lost its doorbell: the sweeper rings again.
    lost_doorbell_seconds: float = 60.0
    # SSE comment sent on a stream that has been silent this long (the peer: 5 s).
    heartbeat_seconds: float = 5.0
    # Checkpoint/event values above this many bytes go to S3 (DynamoDB items stop at 400 KB).
    spill_threshold_bytes: int = 350_000
    region: str = "us-east-1"
    # Where stepgraph's own clients send their calls (STEPGRAPH_ENDPOINT_URL): unset, AWS's own
    # endpoints (deployed; under `stepgraph dev` the in-process emulator answers them); a URL, that
    # endpoint for every service; "localstack", a LocalStack instance's endpoint for each service as
    # `localstack-client` resolves it (LOCALSTACK_HOST, default localhost:4566).
    endpoint_url: str | None = None
    # stepgraph's own credentials; None: the process's (on Lambda, the function's role). The
    # local runtime sets fake ones here, leaving the user's AWS_* variables to the user's code.
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # The local runtime's emulated AWS checks no signatures; skipping SigV4 saves ~20% per call.
    sign_requests: bool = True
    # Without `auth` in langgraph.json, the API asks every request (but /ok) for this Secrets
    # Manager secret in `x-api-key`: what the template creates at deploy. `stepgraph dev` turns
    # `require_api_key` off, as `langgraph dev` serves loopback openly; custom auth applies always.
    api_key_secret_arn: str = ""
    require_api_key: bool = True
    # Webhooks (engine/webhooks.py): the queue a finished run's delivery goes to, the queue a
    # delivery goes to when it cannot be delivered, and the Secrets Manager secret that signs them
    # (langgraph.json `webhooks.secret` comes first). A delivery is retried with exponential
    # backoff from `webhook_backoff_seconds` (at most `webhook_max_backoff_seconds` apart) for
    # `webhook_max_age_seconds` after it was queued.
    webhook_queue_url: str = ""
    webhook_dead_letter_queue_url: str = ""
    webhook_secret_arn: str = ""
    webhook_backoff_seconds: int = 30
    webhook_max_backoff_seconds: int = 3_600
    webhook_max_age_seconds: int = 86_400
    # Whether a webhook may reach loopback and private addresses when langgraph.json's
    # `webhooks.url` does not say (`disable_loopback`, `disable_private_ips`): `stepgraph dev`
    # turns it on (a receiver on 127.0.0.1); deployed, webhooks reach public addresses only.
    webhook_local_network: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            checkpoints_table=_env("CHECKPOINTS_TABLE", cls.checkpoints_table),
            assistants_table=_env("ASSISTANTS_TABLE", cls.assistants_table),
            threads_table=_env("THREADS_TABLE", cls.threads_table),
            runs_table=_env("RUNS_TABLE", cls.runs_table),
            events_table=_env("EVENTS_TABLE", cls.events_table),
            store_table=_env("STORE_TABLE", cls.store_table),
            crons_table=_env("CRONS_TABLE", cls.crons_table),
            schedule_group=_env("SCHEDULE_GROUP", cls.schedule_group),
            cron_function_arn=_env("CRON_FUNCTION_ARN"),
            scheduler_role_arn=_env("SCHEDULER_ROLE_ARN"),
            spill_bucket=_env("SPILL_BUCKET", cls.spill_bucket),
            run_queue_url=_env("RUN_QUEUE_URL"),
            state_machine_arn=_env("STATE_MACHINE_ARN"),
            delay_state_machine_arn=_env("DELAY_STATE_MACHINE_ARN"),
            config_path=_env("CONFIG", cls.config_path),
            step_mode=_env("STEP_MODE", cls.step_mode),
            step_budget_ms=int(_env("STEP_BUDGET_MS", str(cls.step_budget_ms))),
            commit_linger_ms=int(_env("COMMIT_LINGER_MS", str(cls.commit_linger_ms))),
            event_ttl_seconds=int(_env("EVENT_TTL_SECONDS", str(cls.event_ttl_seconds))),
            handover_after=max(1, int(_env("HANDOVER_AFTER", str(cls.handover_after)))),
            lost_doorbell_seconds=float(_env("LOST_DOORBELL_SECONDS", str(cls.lost_doorbell_seconds))),
            heartbeat_seconds=float(_env("HEARTBEAT_SECONDS", str(cls.heartbeat_seconds))),
            region=_env("REGION") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or cls.region,
            endpoint_url=_env("ENDPOINT_URL") or None,
            access_key_id=_env("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=_env("AWS_SECRET_ACCESS_KEY") or None,
            sign_requests=_env("SIGN_REQUESTS", "1") != "0",
            api_key_secret_arn=_env("API_KEY_SECRET_ARN"),
            require_api_key=_env("REQUIRE_API_KEY", "1") != "0",
            webhook_queue_url=_env("WEBHOOK_QUEUE_URL"),
            webhook_dead_letter_queue_url=_env("WEBHOOK_DEAD_LETTER_QUEUE_URL"),
            webhook_secret_arn=_env("WEBHOOK_SECRET_ARN"),
            webhook_backoff_seconds=max(1, int(_env("WEBHOOK_BACKOFF_SECONDS", str(cls.webhook_backoff_seconds)))),
            webhook_max_backoff_seconds=int(_env("WEBHOOK_MAX_BACKOFF_SECONDS", str(cls.webhook_max_backoff_seconds))),
            webhook_max_age_seconds=int(_env("WEBHOOK_MAX_AGE_SECONDS", str(cls.webhook_max_age_seconds))),
            webhook_local_network=_env("WEBHOOK_LOCAL_NETWORK", "0") == "1",
        )


class _Service:
    """A `Clients` attribute: stepgraph's client of one AWS service."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, clients: Clients, owner: type[Clients]) -> Any:
        return clients.client(self.name)


@dataclass
class Clients:
    """boto3 clients for one process, created on first use (never at import)."""

    settings: Settings
    _cache: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """stepgraph's client for `service` (one per service and process)."""
        if service not in self._cache:
            import boto3
            import botocore
            from botocore import UNSIGNED
            from botocore.config import Config

            local = not self.settings.sign_requests  # the local runtime's emulated AWS
            options: dict[str, Any] = {}
            if local:
                # botocore builds its User-Agent anew for every request (~45 µs, twice); a fixed
                # one, still carrying the app id the emulator answers to, costs nothing.
                options["user_agent"] = f"Botocore/{botocore.__version__} app/{APP_ID}"
            if local and service != "s3":
                # Unsigned requests save the emulator a SigV4 signature per call; S3 is always
                # signed: moto answers an anonymous GetObject with 403 (a spilled value unreadable).
                options["signature_version"] = UNSIGNED
            config = client_config(Config(**options) if options else None)
            session: Any = boto3  # its default session: the process's credentials (a role's on Lambda)
            credentials = {}
            if self.settings.access_key_id:
                session = own_session()
                credentials = {
                    "aws_access_key_id": self.settings.access_key_id,
                    "aws_secret_access_key": self.settings.secret_access_key,
                }
            if self.settings.endpoint_url == LOCALSTACK and not credentials:
                # LocalStack takes any key; its own default spares the user a fake profile.
                credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
                session = own_session()
            client = session.client(
                service,
                region_name=self.settings.region,
                endpoint_url=endpoint_for(self.settings.endpoint_url, service),
                config=config,
                **credentials,
            )
            from stepgraph.billing import instrument

            # What each call uses goes on the bill of the run being worked for (billing.meter);
            # DynamoDB's own consumed-capacity figures are trusted from AWS only, not emulators.
            instrument(
                client,
                trust_reported_capacity=self.settings.sign_requests and self.settings.endpoint_url is None,
                delay_state_machine_arn=self.settings.delay_state_machine_arn,
            )
            self._cache[service] = client
        return self._cache[service]

    dynamodb = _Service("dynamodb")
    s3 = _Service("s3")
    sqs = _Service("sqs")
    sfn = _Service("stepfunctions")
    secretsmanager = _Service("secretsmanager")
    scheduler = _Service("scheduler")
