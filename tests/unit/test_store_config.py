"""langgraph.json's `store`: `index.embed` is the user's function (a file or a module) or a
LangChain model id, `ttl` passes through, and a malformed `store` stops the server at start."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from stepgraph.engine import ConfigError
from stepgraph.engine.graphs import GraphRegistry


def registry(tmp_path: Path, store: object) -> GraphRegistry:
    (tmp_path / "embedder.py").write_text("def embed(texts):\n    return [[float(len(t)), 1.0] for t in texts]\n")
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {"g": "./embedder.py:embed"}, "store": store}))
    return GraphRegistry.from_config(tmp_path / "langgraph.json")


def test_embed_from_a_file_with_fields_and_ttl(tmp_path):
    graphs = registry(
        tmp_path, {"index": {"dims": 2, "embed": "./embedder.py:embed", "fields": ["text"]}, "ttl": {"default_ttl": 5}}
    )
    index = graphs.store_index()
    assert index is not None and index["dims"] == 2 and index["fields"] == ["text"]
    assert callable(index["embed"]) and index["embed"](["abc"]) == [[3.0, 1.0]]  # type: ignore[operator]
    assert graphs.store_config["ttl"] == {"default_ttl": 5}


def test_no_store_no_index(tmp_path):
    assert registry(tmp_path, None).store_index() is None


@pytest.mark.skipif(importlib.util.find_spec("langchain") is not None, reason="langchain is installed")
def test_a_model_id_without_langchain_is_a_clear_config_error(tmp_path):
    graphs = registry(tmp_path, {"index": {"dims": 1536, "embed": "openai:text-embedding-3-small"}})
    with pytest.raises(ConfigError, match="install langchain"):
        graphs.store_index()


@pytest.mark.parametrize(
    "store",
    [
        "yes",
        {"index": {"embed": "./embedder.py:embed"}},  # no dims
        {"index": {"dims": 2}},  # no embed
        {"index": {"dims": 2, "embed": "./embedder.py:embed", "fields": "text"}},
        {"ttl": 5},
    ],
)
def test_a_malformed_store_is_refused(tmp_path, store):
    with pytest.raises(ConfigError, match="store"):
        registry(tmp_path, store)
