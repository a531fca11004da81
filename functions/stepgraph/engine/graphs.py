"""Graphs named by a langgraph.json, loaded the way `langgraph dev` loads them."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

logger = logging.getLogger(__name__)

# The peer's namespace for system assistant ids: uuid5(NAMESPACE, graph_id).
ASSISTANT_NAMESPACE = UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
SUPPORTED_KEYS = {"graphs", "dependencies", "env", "python_version", "pip_config_file"}


def system_assistant_id(graph_id: str) -> str:
    return str(uuid5(ASSISTANT_NAMESPACE, graph_id))


class ConfigError(ValueError):
    pass


@dataclass
class GraphSpec:
    graph_id: str
    ref: str  # "./path/file.py:attr" or "pkg.module:attr"
    description: str | None = None


@dataclass
class GraphRegistry:
    """Graph ids → compiled graphs (without checkpointer), imported lazily and cached."""

    root: Path
    specs: dict[str, GraphSpec]
    _cache: dict[str, Pregel] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, path: str | Path) -> "GraphRegistry":
        path = Path(path).resolve()
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"langgraph.json not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(config, dict) or not isinstance(config.get("graphs"), dict) or not config["graphs"]:
            raise ConfigError(f"{path}: 'graphs' must be a non-empty object")
        for key in sorted(set(config) - SUPPORTED_KEYS):
            logger.warning("langgraph.json key %r is not supported yet by stepgraph; ignored", key)
        root = path.parent
        for dep in config.get("dependencies", []):
            if isinstance(dep, str) and (dep.startswith(".") or dep.startswith("/")):
                dep_path = str((root / dep).resolve())
                if dep_path not in sys.path:
                    sys.path.insert(0, dep_path)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        _load_env(root, config.get("env"))
        specs = {}
        for graph_id, value in config["graphs"].items():
            if isinstance(value, str):
                specs[graph_id] = GraphSpec(graph_id, value)
            elif isinstance(value, dict) and isinstance(value.get("path"), str):
                specs[graph_id] = GraphSpec(graph_id, value["path"], value.get("description"))
            else:
                raise ConfigError(f"{path}: graph {graph_id!r} must be 'file.py:attr' or {{'path': ...}}")
        return cls(root=root, specs=specs)

    def graph_ids(self) -> list[str]:
        return list(self.specs)

    def get(self, graph_id: str) -> Pregel:
        graph = self._cache.get(graph_id)
        if graph is not None:
            return graph
        with self._lock:
            if graph_id not in self._cache:
                if graph_id not in self.specs:
                    raise KeyError(graph_id)
                self._cache[graph_id] = self._load(self.specs[graph_id])
            return self._cache[graph_id]

    def _load(self, spec: GraphSpec) -> Pregel:
        module_ref, _, attr = spec.ref.rpartition(":")
        if not module_ref or not attr:
            raise ConfigError(f"graph {spec.graph_id!r}: {spec.ref!r} must look like 'file.py:attr'")
        if module_ref.endswith(".py") or "/" in module_ref:
            file = (self.root / module_ref).resolve()
            name = f"stepgraph_user_graph_{spec.graph_id}"
            module_spec = importlib.util.spec_from_file_location(name, file)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"graph {spec.graph_id!r}: cannot import {file}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_ref)
        obj = getattr(module, attr)
        return _compile(spec.graph_id, obj)


def _compile(graph_id: str, obj: Any) -> Pregel:
    if isinstance(obj, StateGraph):
        obj = obj.compile()
    if isinstance(obj, Pregel):
        return obj
    if callable(obj):
        # A factory taking a RunnableConfig (or nothing), as the peer allows.
        params = inspect.signature(obj).parameters
        made = obj({"configurable": {}}) if params else obj()
        if inspect.isawaitable(made):
            raise ConfigError(f"graph {graph_id!r}: async factories are not supported yet")
        return _compile(graph_id, made)
    raise ConfigError(f"graph {graph_id!r} is a {type(obj).__name__}, not a graph")


def _load_env(root: Path, env: Any) -> None:
    import os

    if isinstance(env, dict):
        for key, value in env.items():
            os.environ.setdefault(key, str(value))
    elif isinstance(env, str):
        file = root / env
        if file.exists():
            for line in file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, _, value = line.partition("=")
                    os.environ.setdefault(key.strip(), value.strip().strip("'\""))
