"""Two nodes, each one Step invocation in strict mode, reporting the user they run for."""

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


class State(TypedDict, total=False):
    seen: Annotated[list[dict[str, Any]], operator.add]


def _who(node: str, config: RunnableConfig, runtime: Runtime) -> dict[str, Any]:
    configurable = config["configurable"]
    user = configurable["langgraph_auth_user"]
    server_user = runtime.server_info.user if runtime.server_info else None
    return {
        "node": node,
        "identity": user.identity,
        "org": user["org"],
        "user_id": configurable["langgraph_auth_user_id"],
        "permissions": configurable["langgraph_auth_permissions"],
        "runtime_identity": server_user.identity if server_user else None,
    }


async def first(state: State, config: RunnableConfig, runtime: Runtime) -> State:
    return {"seen": [_who("first", config, runtime)]}


def second(state: State, config: RunnableConfig, runtime: Runtime) -> State:
    return {"seen": [_who("second", config, runtime)]}


builder = StateGraph(State)
builder.add_node("first", first)
builder.add_node("second", second)
builder.add_edge(START, "first")
builder.add_edge("first", "second")
builder.add_edge("second", END)
graph = builder.compile()
