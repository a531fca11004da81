"""Graphs named by a langgraph.json, loaded the way `langgraph dev` and the Agent Server load them.

A graph reference is `./path/file.py:attr` or `pkg.module:attr`; the attribute is a compiled graph,
an uncompiled `StateGraph`, or a factory: a function (sync or async, or a sync/async context
manager) taking nothing, a `RunnableConfig`, a `ServerRuntime`, or both. As on the peer, a
factory is called again for every run with that run's config and context (`aopen_graph`), and
its parameters are told apart by their type annotations (a lone unannotated one gets the config).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import threading
import tomllib
import typing
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast
from uuid import UUID, uuid5

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from stepgraph.engine.errors import ConfigError
from stepgraph.engine.eventloop import run_on_engine_loop
from stepgraph.engine.webhooks import WebhookConfig, webhook_config

if TYPE_CHECKING:
    from langgraph.store.base import BaseStore, IndexConfig

logger = logging.getLogger(__name__)

# The peer's namespace for system assistant ids: uuid5(NAMESPACE, graph_id).
ASSISTANT_NAMESPACE = UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
SUPPORTED_KEYS = {
    "$schema",
    "graphs",
    "dependencies",
    "env",
    "python_version",
    "pip_config_file",
    "image_distro",
    "auth",
    "http",
    "webhooks",
    "store",
}
# `store` keys: `index` (semantic search) and `ttl`; a custom store (`path`) is not served.
_STORE_KEYS = {"index", "ttl"}
# `auth` keys: `path` is enforced; Studio's bypass (`x-auth-scheme: langsmith`) is never
# honoured, so `disable_studio_auth` changes nothing either way.
_AUTH_KEYS = {"path", "disable_studio_auth"}
# `http.cors` as the peer reads it: Starlette's CORSMiddleware arguments.
CORS_KEYS = {
    "allow_origins",
    "allow_methods",
    "allow_headers",
    "allow_credentials",
    "allow_origin_regex",
    "expose_headers",
    "max_age",
}

# `http.disable_<surface>` keys stepgraph honours.
DISABLE_KEYS = ("disable_mcp", "disable_a2a")

# Why a factory is called (langgraph_sdk.runtime.AccessContext): only a run gets `context`.
AccessContext = Literal["threads.create_run", "threads.update", "threads.read", "assistants.read"]

# A compiled graph of any state, context, input and output: users bring every kind.
CompiledGraph: TypeAlias = Pregel[Any, Any, Any, Any]


def read_as(graph: CompiledGraph, checkpointer: BaseCheckpointSaver[Any]) -> BaseCheckpointSaver[Any]:
    """`checkpointer`, reviving the types of `graph`'s state, for reads made outside the graph
    (strict msgpack mode: otherwise those types load as plain dicts)."""
    allowlist = graph._serde_allowlist
    return checkpointer.with_allowlist(allowlist) if allowlist else checkpointer


def with_checkpointer(
    graph: CompiledGraph, checkpointer: BaseCheckpointSaver[Any], *, store: BaseStore | None = None
) -> CompiledGraph:
    """`graph` checkpointing to `checkpointer` (and with `store` as its `runtime.store`, if given).
    Pregel.copy drops the msgpack allowlist LangGraph built from the graph's state types when it
    compiled (strict mode): carried over here, or a checkpoint read through the copy would revive
    the user's own types as plain dicts."""
    update: dict[str, Any] = {"checkpointer": checkpointer}
    if store is not None:
        update["store"] = store
    bound = graph.copy(update=update)
    bound._serde_allowlist = graph._serde_allowlist
    return bound


def system_assistant_id(graph_id: str) -> str:
    return str(uuid5(ASSISTANT_NAMESPACE, graph_id))


@dataclass
class GraphSpec:
    graph_id: str
    ref: str  # "./path/file.py:attr" or "pkg.module:attr"
    description: str | None = None


@dataclass
class Factory:
    """A graph factory and how to call it: which parameter takes the config, which the runtime."""

    fn: Callable[..., Any]
    config_param: str | None = None
    runtime_param: str | None = None
    context_type: Any = None  # T of ServerRuntime[T]: the run's context is coerced to it

    def call(self, config: dict[str, Any], runtime: Any) -> Any:
        kwargs = {}
        if self.config_param:
            kwargs[self.config_param] = config
        if self.runtime_param:
            kwargs[self.runtime_param] = runtime
        return self.fn(**kwargs)


@dataclass
class GraphRegistry:
    """Graph ids → compiled graphs (without checkpointer), imported lazily and cached.

    `get` gives the graph for introspection and state reads; a factory is called once for it,
    as for `assistants.read`. `aopen_graph` gives the graph a run executes: a
    factory is called anew with the run's config and context, and a context manager it returns
    stays open until the run's block ends.
    """

    root: Path
    specs: dict[str, GraphSpec]
    # `auth.path` of langgraph.json: a `langgraph_sdk.Auth` object the API enforces.
    auth_ref: str | None = None
    # `http.cors`: CORSMiddleware's arguments; None, no CORS headers at all.
    cors: dict[str, Any] | None = None
    # `http.disable_mcp` / `http.disable_a2a`: the protocol surfaces the API does not serve.
    disabled: frozenset[str] = frozenset()
    # `webhooks`: static headers, allowed fields and the signing secret, resolved at start.
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    # `store` of langgraph.json: `index` (dims, embed, fields) and `ttl` of the long-term store.
    store_config: dict[str, Any] = field(default_factory=dict)
    # The long-term store a factory's ServerRuntime carries (set by the Context that owns both).
    store_of: Callable[[], BaseStore | None] = lambda: None
    _targets: dict[str, CompiledGraph | Factory] = field(default_factory=dict)
    _cache: dict[str, CompiledGraph] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def from_config(cls, path: str | Path) -> GraphRegistry:
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
        auth_ref = _auth_ref(path, config.get("auth"))
        cors = _cors(path, config.get("http"))
        disabled = _disabled(path, config.get("http"))
        store_config = _store_config(path, config.get("store"))
        root = path.parent
        add_import_paths(root, config.get("dependencies") or [])
        load_env(root, config.get("env"))
        webhooks = webhook_config(config.get("webhooks"))
        specs = {}
        for graph_id, value in config["graphs"].items():
            if isinstance(value, str):
                specs[graph_id] = GraphSpec(graph_id, value)
            elif isinstance(value, dict) and isinstance(value.get("path"), str):
                specs[graph_id] = GraphSpec(graph_id, value["path"], value.get("description"))
            else:
                raise ConfigError(f"{path}: graph {graph_id!r} must be 'file.py:attr' or {{'path': ...}}")
        return cls(
            root=root,
            specs=specs,
            auth_ref=auth_ref,
            cors=cors,
            disabled=disabled,
            webhooks=webhooks,
            store_config=store_config,
        )

    def graph_ids(self) -> list[str]:
        return list(self.specs)

    def get(self, graph_id: str) -> CompiledGraph:
        graph = self._cache.get(graph_id)
        if graph is not None:
            return graph
        with self._lock:
            if graph_id not in self._cache:
                target = self._target(graph_id)
                if isinstance(target, Factory):
                    runtime = server_runtime("assistants.read", store=self.store_of())
                    self._cache[graph_id] = _build_once(graph_id, target.call({"configurable": {}}, runtime))
                else:
                    self._cache[graph_id] = target
            return self._cache[graph_id]

    def import_all(self) -> None:
        """Import every graph now (a factory is not called): raises what the first that fails to
        import raises, as a run of it would."""
        for graph_id in self.specs:
            self._target(graph_id)

    def is_factory(self, graph_id: str) -> bool:
        return isinstance(self._target(graph_id), Factory)

    @contextlib.asynccontextmanager
    async def aopen_graph(
        self,
        graph_id: str,
        config: dict[str, Any],
        *,
        context: Any = None,
        access_context: AccessContext = "threads.create_run",
    ) -> AsyncIterator[CompiledGraph]:
        """The graph a run executes, on the caller's event loop (where its nodes will run too)."""
        target = self._target(graph_id)
        if not isinstance(target, Factory):
            yield target
            return
        user = (config.get("configurable") or {}).get("langgraph_auth_user")
        made = target.call(
            config, server_runtime(access_context, context, target.context_type, user=user, store=self.store_of())
        )
        async with contextlib.AsyncExitStack() as stack:
            while True:
                if isinstance(made, (Pregel, StateGraph)):
                    break
                if hasattr(made, "__aenter__") and hasattr(made, "__aexit__"):
                    made = await stack.enter_async_context(made)
                elif hasattr(made, "__enter__") and hasattr(made, "__exit__"):
                    made = stack.enter_context(made)
                elif inspect.isawaitable(made):
                    made = await made
                else:
                    break
            yield _compiled(graph_id, made)

    def _target(self, graph_id: str) -> CompiledGraph | Factory:
        target = self._targets.get(graph_id)
        if target is not None:
            return target
        with self._lock:
            if graph_id not in self._targets:
                if graph_id not in self.specs:
                    raise KeyError(graph_id)
                self._targets[graph_id] = _classify(graph_id, self._import(self.specs[graph_id]))
            return self._targets[graph_id]

    def store_index(self) -> IndexConfig | None:
        """`store.index` with its `embed` made callable: a `./file.py:attr` or `pkg.module:attr`
        function (sync or async, texts to vectors) or a LangChain `Embeddings`, or a LangChain
        model id (`openai:text-embedding-3-small`) for `langchain.embeddings.init_embeddings`."""
        index = self.store_config.get("index")
        if index is None:
            return None
        embed = index["embed"]
        module_ref, _, _ = embed.rpartition(":")
        if module_ref.endswith(".py") or "/" in module_ref or "\\" in module_ref or "." in module_ref:
            embed = self._load(embed, "store.index.embed")
        else:
            try:
                from langchain.embeddings import init_embeddings  # type: ignore[import-not-found]
            except ImportError:
                raise ConfigError(
                    f"store.index.embed {embed!r} names a LangChain embeddings model: install langchain "
                    "(and the provider's package), or give a './file.py:function'"
                ) from None
            embed = init_embeddings(embed)
        config: IndexConfig = {"dims": index["dims"], "embed": embed}
        if index.get("fields") is not None:
            config["fields"] = list(index["fields"])
        return config

    def load_auth(self) -> Any:
        """The `langgraph_sdk.Auth` object `auth.path` names (None without one). Raises
        ConfigError when it cannot be imported or is not an Auth: a server must not start
        without the auth its langgraph.json asks for."""
        from langgraph_sdk import Auth

        if self.auth_ref is None:
            return None
        auth = self._load(self.auth_ref, "auth")
        if not isinstance(auth, Auth):
            raise ConfigError(f"auth: {self.auth_ref!r} is a {type(auth).__name__}, not a langgraph_sdk.Auth")
        return auth

    def _import(self, spec: GraphSpec) -> Any:
        return self._load(spec.ref, f"graph {spec.graph_id!r}")

    def _load(self, ref: str, what: str) -> Any:
        """The object `./file.py:attr` or `pkg.module:attr` names; `what` names it in errors."""
        module_ref, _, attr = ref.rpartition(":")
        if not module_ref or not attr:
            raise ConfigError(f"{what}: {ref!r} must look like 'file.py:attr'")
        if module_ref.endswith(".py") or "/" in module_ref or "\\" in module_ref:
            module = self._import_file(what, module_ref)
        else:
            module = importlib.import_module(module_ref)
        try:
            return getattr(module, attr)
        except AttributeError:
            raise ConfigError(f"{what}: {module_ref} has no attribute {attr!r}") from None

    def _import_file(self, what: str, module_ref: str) -> Any:
        file = (self.root / module_ref).resolve()
        if not file.is_file():
            raise ConfigError(f"{what}: {file} does not exist")
        # A name derived from the file's place in the project: the same in every process (a
        # checkpoint that stores a dataclass state names its module), loaded once however many
        # graphs the file holds.
        try:
            relative = file.relative_to(self.root)
        except ValueError:
            relative = Path(*file.parts[1:])
        name = "_stepgraph_graph__" + re.sub(r"\W", "_", "__".join(relative.with_suffix("").parts))
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None) == str(file):
            return module
        module_spec = importlib.util.spec_from_file_location(name, file)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"{what}: cannot import {file}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module


def _auth_ref(path: Path, auth: Any) -> str | None:
    if auth is None:
        return None
    if not isinstance(auth, dict) or not isinstance(auth.get("path"), str):
        raise ConfigError(f"{path}: 'auth' must be an object with a 'path' like './auth.py:auth'")
    for key in sorted(set(auth) - _AUTH_KEYS):
        logger.warning("langgraph.json key 'auth.%s' is not supported yet by stepgraph; ignored", key)
    ref: str = auth["path"]
    return ref


def _cors(path: Path, http: Any) -> dict[str, Any] | None:
    if http is None:
        return None
    if not isinstance(http, dict):
        raise ConfigError(f"{path}: 'http' must be an object")
    for key in sorted(set(http) - {"cors", *DISABLE_KEYS}):
        logger.warning("langgraph.json key 'http.%s' is not supported yet by stepgraph; ignored", key)
    cors = http.get("cors")
    if cors is None:
        return None
    if not isinstance(cors, dict):
        raise ConfigError(f"{path}: 'http.cors' must be an object")
    unknown = set(cors) - CORS_KEYS
    if unknown:
        raise ConfigError(f"{path}: 'http.cors' takes {', '.join(sorted(CORS_KEYS))}; not {', '.join(sorted(unknown))}")
    return dict(cors)


def _store_config(path: Path, store: Any) -> dict[str, Any]:
    if store is None:
        return {}
    if not isinstance(store, dict):
        raise ConfigError(f"{path}: 'store' must be an object")
    for key in sorted(set(store) - _STORE_KEYS):
        logger.warning("langgraph.json key 'store.%s' is not supported yet by stepgraph; ignored", key)
    index = store.get("index")
    if index is not None and (
        not isinstance(index, dict)
        or not isinstance(index.get("dims"), int)
        or not isinstance(index.get("embed"), str)
        or not isinstance(index.get("fields", []), (list, type(None)))
    ):
        raise ConfigError(
            f"{path}: 'store.index' must be an object with 'dims' (an integer), 'embed' (a "
            "'./file.py:function' or a model id like 'openai:text-embedding-3-small') and optional 'fields'"
        )
    ttl = store.get("ttl")
    if ttl is not None and not isinstance(ttl, dict):
        raise ConfigError(f"{path}: 'store.ttl' must be an object (refresh_on_read, default_ttl)")
    return {key: store[key] for key in _STORE_KEYS if store.get(key) is not None}


def _disabled(path: Path, http: Any) -> frozenset[str]:
    """The surfaces `http.disable_<name>: true` removes (`mcp`, `a2a`)."""
    if not isinstance(http, dict):
        return frozenset()
    for key in DISABLE_KEYS:
        if not isinstance(http.get(key, False), bool):
            raise ConfigError(f"{path}: 'http.{key}' must be true or false")
    return frozenset(key.removeprefix("disable_") for key in DISABLE_KEYS if http.get(key))


def _classify(graph_id: str, obj: Any) -> CompiledGraph | Factory:
    if isinstance(obj, (Pregel, StateGraph)):
        return _compiled(graph_id, obj)
    if callable(obj):
        return _factory(graph_id, obj)
    raise ConfigError(f"graph {graph_id!r} is a {type(obj).__name__}, not a graph or a graph factory")


def _compiled(graph_id: str, obj: Any) -> CompiledGraph:
    if isinstance(obj, StateGraph):
        obj = obj.compile()
    if isinstance(obj, Pregel):
        return obj
    raise ConfigError(f"graph {graph_id!r}: the factory made a {type(obj).__name__}, not a graph")


def _factory(graph_id: str, fn: Callable[..., Any]) -> Factory:
    """Which parameter gets the config and which the ServerRuntime, read from the annotations."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"graph {graph_id!r}: cannot read the factory's signature: {exc}") from None
    params = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    hints = _type_hints(fn)
    runtime = [p for p in params if _is_server_runtime(hints.get(p.name, p.annotation))]
    others = [p for p in params if p not in runtime]
    if len(params) > 2 or len(runtime) > 1 or len(others) > 1:
        raise ConfigError(
            f"graph {graph_id!r}: a factory takes at most a config and a ServerRuntime argument; "
            f"got ({', '.join(p.name for p in params)})"
        )
    return Factory(
        fn,
        config_param=others[0].name if others else None,
        runtime_param=runtime[0].name if runtime else None,
        context_type=_context_type(hints.get(runtime[0].name, runtime[0].annotation)) if runtime else None,
    )


def _type_hints(fn: object) -> dict[str, Any]:
    from langchain_core.runnables import RunnableConfig
    from langgraph_sdk.runtime import ServerRuntime

    target = fn
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)) and callable(fn):
        target = fn.__call__  # a callable object's parameters are those of its __call__
    try:
        return typing.get_type_hints(target, localns={"ServerRuntime": ServerRuntime, "RunnableConfig": RunnableConfig})
    except Exception:  # evaluating the user's annotations can raise anything
        logger.debug("annotations of %r do not resolve; read as written", fn, exc_info=True)
        return {}


def _is_server_runtime(annotation: Any) -> bool:
    from langgraph_sdk.runtime import ServerRuntime, _ExecutionRuntime, _ReadRuntime

    if annotation is inspect.Parameter.empty or annotation is None:
        return False
    if isinstance(annotation, str):  # unresolved string annotation
        return annotation.split("[", 1)[0].strip().rsplit(".", 1)[-1] == "ServerRuntime"
    if annotation is ServerRuntime:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, (_ExecutionRuntime, _ReadRuntime))
    origin = typing.get_origin(annotation)
    if origin is ServerRuntime:
        return True
    return any(_is_server_runtime(arg) for arg in typing.get_args(annotation) if origin is not None)


def _context_type(annotation: Any) -> Any:
    from langgraph_sdk.runtime import ServerRuntime

    origin = typing.get_origin(annotation)
    if origin is ServerRuntime:
        args = typing.get_args(annotation)
        return args[0] if args else None
    if origin is not None:
        for arg in typing.get_args(annotation):
            found = _context_type(arg)
            if found is not None:
                return found
    return None


def coerce_context(context: Any, context_type: Any) -> Any:
    """A run's context (a JSON object) as the factory's `ServerRuntime[T]` declares it."""
    if not isinstance(context, dict) or context_type is None or not isinstance(context_type, type):
        return context
    try:
        if hasattr(context_type, "model_validate"):
            return context_type.model_validate(context)
        if dataclasses.is_dataclass(context_type):
            return context_type(**context)
    except Exception:  # the user's type may raise anything; the peer then hands the factory the plain object too
        logger.warning(
            "run context does not fit %s; the factory gets it as a dict", context_type.__name__, exc_info=True
        )
    return context


def server_runtime(
    access_context: AccessContext,
    context: Any = None,
    context_type: Any = None,
    *,
    user: Any = None,
    store: BaseStore | None = None,
) -> Any:
    """The `langgraph_sdk.runtime.ServerRuntime` a factory receives; only a run carries `context`,
    and `user` when auth.py authenticated one."""
    from langgraph_sdk.runtime import _ExecutionRuntime, _ReadRuntime

    # The SDK types `store` as always set; a registry without a context has none (hence the cast).
    the_store = cast("BaseStore", store)
    if access_context == "threads.create_run":
        return _ExecutionRuntime(
            access_context=access_context, user=user, store=the_store, context=coerce_context(context, context_type)
        )
    return _ReadRuntime(access_context=access_context, user=user, store=the_store)


def _build_once(graph_id: str, made: Any) -> CompiledGraph:
    """A factory's graph for introspection: its context manager is entered and left at once."""

    async def resolve(value: Any) -> Any:
        while True:
            if isinstance(value, (Pregel, StateGraph)):
                return value
            if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
                async with value as entered:
                    value = entered
            elif hasattr(value, "__enter__") and hasattr(value, "__exit__"):
                with value as entered:
                    value = entered
            elif inspect.isawaitable(value):
                value = await value
            else:
                return value

    if isinstance(made, (Pregel, StateGraph)):
        return _compiled(graph_id, made)
    return _compiled(graph_id, run_on_engine_loop(resolve(made)))


def add_import_paths(root: Path, dependencies: list[Any]) -> None:
    """Make local `dependencies` importable, as `pip install -e` of each would: the folder itself,
    and where its pyproject.toml keeps packages in another folder (a `src/` layout, as LangGraph's
    app template does), that folder too."""
    paths = [root]
    for dep in dependencies:
        if not isinstance(dep, str) or not (dep.startswith(".") or dep.startswith("/")):
            continue  # a pip requirement: installed beforehand, nothing to do here
        folder = (root / dep).resolve()
        if not folder.is_dir():
            logger.warning("dependency %r is not a folder; ignored", dep)
            continue
        paths.append(folder)
        paths.extend(_package_roots(folder))
    for path in reversed(paths):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def _package_roots(folder: Path) -> list[Path]:
    roots: list[Path] = []
    pyproject = folder / "pyproject.toml"
    tool: dict[str, Any] = {}
    if pyproject.is_file():
        try:
            tool = tomllib.loads(pyproject.read_text()).get("tool", {})
        except (tomllib.TOMLDecodeError, OSError) as exc:
            logger.warning("%s is not readable (%s); its package layout is guessed", pyproject, exc)
    # setuptools: package-dir = {"" = "src"} or {"agent" = "src/agent"}
    for name, where in ((tool.get("setuptools") or {}).get("package-dir") or {}).items():
        where_path = (folder / where).resolve()
        if name == "":
            roots.append(where_path)
        elif where_path.name == name.rsplit(".", 1)[-1] and "." not in name:
            roots.append(where_path.parent)
    # hatch: packages = ["src/agent"]
    wheel = ((tool.get("hatch") or {}).get("build") or {}).get("targets", {}).get("wheel", {})
    for package in wheel.get("packages") or []:
        roots.append((folder / package).resolve().parent)
    # poetry: packages = [{include = "agent", from = "src"}]
    for package in (tool.get("poetry") or {}).get("packages") or []:
        if isinstance(package, dict) and package.get("from"):
            roots.append((folder / package["from"]).resolve())
    if not roots and (folder / "src").is_dir():
        roots.append(folder / "src")  # the src layout every build backend finds by default
    unique: list[Path] = []
    for path in roots:
        if path != folder and path.is_dir() and path not in unique:
            unique.append(path)
    return unique


def load_env(root: Path, env: Any) -> None:
    """The `env` key: a dotenv file (relative to langgraph.json) or a mapping. As on the peer's dev
    server, its values override the process environment, and it is read before any graph imports."""
    if env is None:
        return
    if isinstance(env, dict):
        values = {str(k): None if v is None else str(v) for k, v in env.items()}
    elif isinstance(env, str):
        from dotenv import dotenv_values

        file = (root / env).resolve()
        if not file.is_file():
            logger.warning("env file %s does not exist; no environment loaded from it", file)
            return
        values = dotenv_values(file)
    else:
        raise ConfigError(f"'env' must be a path to a .env file or an object, not {type(env).__name__}")
    for key, value in values.items():
        if value is not None:
            os.environ[key] = value
