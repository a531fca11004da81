"""The per-process wiring: settings, AWS clients, stores and graphs, built once and passed down."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

from stepgraph.engine.execution import Doorbell, Executions
from stepgraph.engine.graphs import GraphRegistry
from stepgraph.engine.schedules import CronSchedules
from stepgraph.settings import Clients, Settings
from stepgraph.storage import (
    AssistantStore,
    CronStore,
    DynamoDBSaver,
    DynamoDBStore,
    EventLog,
    Notifier,
    PollingNotifier,
    RunStore,
    ThreadQueue,
    ThreadStore,
)


@dataclass
class Context:
    settings: Settings
    notifier: Notifier = field(default_factory=PollingNotifier)

    @cached_property
    def clients(self) -> Clients:
        return Clients(self.settings)

    @cached_property
    def executions(self) -> Executions:
        return Executions(self.clients.sfn, self.settings)

    @cached_property
    def doorbell(self) -> Doorbell:
        return Doorbell(self.clients.sqs, self.settings)

    @cached_property
    def graphs(self) -> GraphRegistry:
        graphs = GraphRegistry.from_config(self.settings.config_path)
        graphs.store_of = lambda: self.store  # built on first use: its embeddings may load the project's code
        return graphs

    @cached_property
    def store(self) -> DynamoDBStore:
        """The long-term store: `runtime.store` of every graph, and the API's /store routes."""
        store_config = self.graphs.store_config
        return DynamoDBStore(
            self.clients.dynamodb,
            self.settings.store_table,
            s3_client=self.clients.s3,
            bucket=self.settings.spill_bucket,
            spill_threshold_bytes=self.settings.spill_threshold_bytes,
            index=self.graphs.store_index(),
            ttl=store_config.get("ttl"),
        )

    def replace_graphs(self, graphs: GraphRegistry) -> None:
        """`stepgraph dev --reload`: the API's next request and the run's next Step invocation
        read these; an invocation under way keeps the registry it started with."""
        self.__dict__["graphs"] = graphs  # where cached_property keeps its value

    @cached_property
    def assistants(self) -> AssistantStore:
        return AssistantStore(self.clients.dynamodb, self.settings.assistants_table)

    @cached_property
    def threads(self) -> ThreadStore:
        return ThreadStore(self.clients.dynamodb, self.settings.threads_table)

    @cached_property
    def runs(self) -> RunStore:
        return RunStore(self.clients.dynamodb, self.settings.runs_table)

    @cached_property
    def crons(self) -> CronStore:
        return CronStore(self.clients.dynamodb, self.settings.crons_table)

    @cached_property
    def schedules(self) -> CronSchedules:
        return CronSchedules(self.clients.scheduler, self.settings)

    @cached_property
    def queue(self) -> ThreadQueue:
        return ThreadQueue(self.clients.dynamodb, self.settings.threads_table, self.settings.runs_table)

    @cached_property
    def events(self) -> EventLog:
        return EventLog(
            self.clients.dynamodb,
            self.settings.events_table,
            s3=self.clients.s3,
            bucket=self.settings.spill_bucket,
            ttl_seconds=self.settings.event_ttl_seconds,
            spill_threshold_bytes=self.settings.spill_threshold_bytes,
            notifier=self.notifier,
        )

    @cached_property
    def checkpointer(self) -> DynamoDBSaver:
        return DynamoDBSaver(
            dynamodb_client=self.clients.dynamodb,
            s3_client=self.clients.s3,
            table=self.settings.checkpoints_table,
            bucket=self.settings.spill_bucket,
            spill_threshold_bytes=self.settings.spill_threshold_bytes,
        )


_current: Context | None = None
_lock = threading.Lock()


def current_context() -> Context:
    """The process's context: built from the environment on first use (Lambda cold start)."""
    global _current
    with _lock:
        if _current is None:
            _current = Context(Settings.from_env())
        return _current


def set_context(ctx: Context | None) -> None:
    """The local runtime and tests install their own context (shared notifier, moto endpoints)."""
    global _current
    with _lock:
        _current = ctx
