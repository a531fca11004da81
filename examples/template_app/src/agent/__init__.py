"""A LangGraph agent laid out like LangGraph's app template."""

from agent.graph import graph

__all__ = ["graph"]
