"""The API function's share of a run's AWS bill: a request that creates a run (runs.create,
runs.wait, runs.stream, a batch) is billed to it, as the step invocations are: its API Gateway
request, its Lambda time (on AWS, behind the Web Adapter, one invocation lasts the request, a
long `runs.wait` included) and what its AWS calls used (the run's writes, its doorbell)."""

from __future__ import annotations

import os

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from stepgraph.billing import API_REQUESTS
from stepgraph.engine import Bill, Context

# Lambda's own variable on AWS; locally, the template's Globals MemorySize, which the API keeps.
_MEMORY_MB = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))


class BilledRequests:
    """ASGI middleware: meters every HTTP request; records it on the runs it created, if any."""

    def __init__(self, app: ASGIApp, ctx: Context) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bill = Bill("api", _MEMORY_MB)
        try:
            with bill.measuring():
                bill.usage.add(API_REQUESTS, 1)
                await self.app(scope, receive, send)
        finally:
            if bill.runs:  # after the response went out: the client does not wait for this
                await run_in_threadpool(bill.record, self.ctx)
