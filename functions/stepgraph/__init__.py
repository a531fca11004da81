"""stepgraph: a serverless LangGraph Agent Server on Step Functions, Lambda and DynamoDB."""

import os

# LangGraph's strict msgpack mode, on unless the user turned it off: a checkpoint may only revive
# the types LangGraph deems safe and those a graph's own state schema names. LangGraph reads the
# switch when it is first imported (and builds each graph's allowlist when the graph compiles),
# so it is set here, before any handler, the API or the local runtime imports LangGraph.
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

from stepgraph.settings import Settings  # after the switch above

__all__ = ["Settings"]
