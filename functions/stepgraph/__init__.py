"""stepgraph: a serverless LangGraph Agent Server on Step Functions, Lambda and DynamoDB."""

from stepgraph.settings import Settings

__all__ = ["Settings"]
