"""A ReAct agent from `langgraph.prebuilt.create_react_agent`, on a deterministic chat model.

The model needs no network and no key: it reads the conversation and follows a script, calling
`add`, then `multiply` with what `add` returned, then answering from the tool results. It streams
every reply token by token (text, then tool-call chunks), so `messages` streaming shows what a real
model's would.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class ScriptedToolModel(BaseChatModel):
    """Answers "(2 + 3) * 4" the ReAct way: add, multiply, then the answer, whatever it is asked."""

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:
        return self  # the script names its tools; binding changes nothing

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        turn: list[ToolMessage] = []
        for message in messages:  # the tool results since the user last spoke
            if isinstance(message, HumanMessage):
                turn = []
            elif isinstance(message, ToolMessage):
                turn.append(message)
        if not turn:
            return AIMessage(
                content="First I add 2 and 3.",
                tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add", "type": "tool_call"}],
            )
        if len(turn) == 1:
            total = int(turn[0].content)
            return AIMessage(
                content=f"Now I multiply {total} by 4.",
                tool_calls=[
                    {"name": "multiply", "args": {"a": total, "b": 4}, "id": "call_multiply", "type": "tool_call"}
                ],
            )
        return AIMessage(content=f"(2 + 3) * 4 = {turn[-1].content}. I added first, then multiplied.")

    def _chunks(self, messages: list[BaseMessage]) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        for token in re.findall(r"\S+\s*", str(reply.content)):
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))
        for index, call in enumerate(reply.tool_calls):
            chunk = {"name": call["name"], "args": json.dumps(call["args"]), "id": call["id"], "index": index}
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if run_manager:
                run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            await asyncio.sleep(0)  # a token at a time, as a network stream arrives
            if run_manager:
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk


# LangGraph 1.x points to its successor, `langchain.agents.create_agent`; this example keeps the
# prebuilt agent most existing projects use (and `langchain` is not a dependency here).
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    graph = create_react_agent(
        ScriptedToolModel(),
        tools=[add, multiply],
        prompt="You are a careful calculator: use the tools for every step.",
        name="react",
    )
