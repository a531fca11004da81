"""Two nodes, each one Step invocation in strict mode, reporting the user they run for; and a
graph factory that builds the run's graph for the run's user."""

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph_sdk.runtime import ServerRuntime


class State(TypedDict, total=False):
    seen: Annotated[list[dict[str, Any]], operator.add]
    made_for: str | None


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


def made_for(runtime: ServerRuntime) -> Any:
    """A factory: the graph it makes answers whom it was made for (no one when it is made to be
    read, as for the assistant's schemas)."""
    owner = runtime.user.identity if runtime.user else None
    factory = StateGraph(State)
    factory.add_node("answer", lambda state: {"made_for": owner})
    factory.add_edge(START, "answer")
    return factory.compile()
