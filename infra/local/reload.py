"""`stepgraph dev --reload`: graph code reloaded in the server's process when a file of the project
changes, so the emulated AWS (threads, runs, checkpoints) lives on.

A reload imports the project's modules afresh into a new GraphRegistry and swaps it into the
context (`Context.replace_graphs`): the API's next request and every run's next Step invocation
read the new graphs. A run in flight stops at its next checkpoint and goes on from it on the new
code, as a run on AWS does when a deploy replaces the step function's code between invocations;
the superstep under way when the file changed finishes on the code it started with. A reload that
fails (a syntax error, an import error, a broken langgraph.json) keeps the graphs being served and
says why in one line.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import sys
import sysconfig
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import iam

if TYPE_CHECKING:
    from stepgraph.engine.context import Context
    from stepgraph.engine.graphs import GraphRegistry

logger = logging.getLogger("stepgraph.local")

# Folders whose changes never reload: tool caches, virtualenvs, and the dev server's own data.
_IGNORED_DIRS = (".stepgraph", ".langgraph_api", ".ruff_cache", ".venv", "venv", "node_modules")
# Files a running graph or a tool may write beside the code: reloading on them would loop.
_IGNORED_FILES = (r"\.log$", r"\.db$", r"\.sqlite3?$", r"-journal$", r"-wal$", r"\.lock$")


class GraphReloader(threading.Thread):
    """Watches the project (langgraph.json's folder, its local `dependencies`, the folders of its
    graph files and its env file) and reloads the graphs on a change."""

    def __init__(self, ctx: Context, config_path: Path, *, api_function: str, debounce_ms: int = 300) -> None:
        super().__init__(name="graph-reloader", daemon=True)
        self.ctx, self.config_path, self.api_function = ctx, config_path.resolve(), api_function
        self.debounce_ms = debounce_ms
        self.roots = watched_folders(self.config_path)
        # What the app was built with at start-up: changing it takes a restart.
        self._fixed = _fixed_settings(ctx.graphs)
        self._stopping = threading.Event()
        self.reloads = 0

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        from watchfiles import DefaultFilter, watch

        watch_filter = DefaultFilter(
            ignore_dirs=(*DefaultFilter.ignore_dirs, *_IGNORED_DIRS),
            ignore_entity_patterns=(*DefaultFilter.ignore_entity_patterns, *_IGNORED_FILES),
        )
        changes_of = watch(
            *self.roots,
            watch_filter=watch_filter,
            debounce=self.debounce_ms,
            step=50,
            stop_event=self._stopping,
            raise_interrupt=False,
        )
        try:
            for changes in changes_of:
                changed = sorted({Path(path) for _, path in changes})
                try:
                    self.reload(changed)
                except Exception:  # a bug of ours must not end the watching; say it and keep serving
                    logger.exception("reload after a change to %s failed", _names(changed))
        except OSError as exc:  # e.g. the system's inotify watch limit: serving goes on, unreloaded
            logger.error("hot reload is off: cannot watch %s (%s)", ", ".join(map(str, self.roots)), exc)

    def reload(self, changed: list[Path]) -> bool:
        """Import the graphs afresh and serve them; False, and the old ones go on, when they fail."""
        from stepgraph.api.assistants import ensure_system_assistants
        from stepgraph.engine.graphs import GraphRegistry

        previous = _forget_modules(self.roots)
        for path in changed:  # a same-size edit within the same second would pass the .pyc's check
            if path.suffix == ".py":
                with contextlib.suppress(FileNotFoundError, ValueError):
                    Path(importlib.util.cache_from_source(str(path))).unlink()
        importlib.invalidate_caches()
        try:
            graphs = GraphRegistry.from_config(self.config_path)
            graphs.import_all()
        except Exception as exc:  # noqa: BLE001 - user code raises anything; old graphs stay, one line says why
            _forget_modules(self.roots)
            sys.modules.update(previous)  # what the old graphs' pickled states name still imports
            logger.error("reload failed, still serving the previous graphs: %s", describe(exc, self.roots))
            return False
        if _fixed_settings(graphs) != self._fixed:
            logger.warning("langgraph.json's `auth` or `http` changed: restart stepgraph dev to apply it")
        self.ctx.replace_graphs(graphs)
        with iam.acting_as(self.api_function):  # assistants for graphs the change added
            ensure_system_assistants(self.ctx)
        self.reloads += 1
        print(f"stepgraph: reloaded {', '.join(graphs.graph_ids())} after a change to {_names(changed)}", flush=True)
        return True


def watched_folders(config_path: Path) -> list[Path]:
    """langgraph.json's folder, its local `dependencies`, and the folders of its graph files and
    env file, without one inside another."""
    folders = [config_path.parent]
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        config = {}  # the server would not have started; a later fix is still seen in its folder
    root = config_path.parent
    if isinstance(config, dict):
        for dep in config.get("dependencies") or []:
            if isinstance(dep, str) and dep.startswith((".", "/")):
                folders.append(root / dep)
        for value in (config.get("graphs") or {}).values():
            ref = value if isinstance(value, str) else (value or {}).get("path") if isinstance(value, dict) else None
            module = ref.rpartition(":")[0] if isinstance(ref, str) else ""
            if module.endswith(".py") or "/" in module:
                folders.append((root / module).parent)
        if isinstance(config.get("env"), str):
            folders.append((root / config["env"]).parent)
    resolved = sorted({f.resolve() for f in folders if f.resolve().is_dir()}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for folder in resolved:
        if not any(folder.is_relative_to(k) for k in kept):
            kept.append(folder)
    return kept


def _library_folders() -> list[Path]:
    paths = sysconfig.get_paths()
    return [Path(paths[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]


def _forget_modules(roots: Iterable[Path]) -> dict[str, ModuleType]:
    """Take the project's modules out of sys.modules so the next import runs their code again:
    the graph files and whatever module of the watched folders they import, never an installed
    library's (a virtualenv inside the project) nor stepgraph's own."""
    roots = list(roots)
    libraries = _library_folders()
    gone: dict[str, ModuleType] = {}
    for name, module in list(sys.modules.items()):
        if name == "__main__" or name.split(".")[0] in ("stepgraph", "stepgraph_local"):
            continue
        file = getattr(module, "__file__", None)
        if name.startswith("_stepgraph_graph__"):
            gone[name] = module
        elif isinstance(file, str):
            path = Path(file).resolve()
            if (
                any(path.is_relative_to(root) for root in roots)
                and not any(path.is_relative_to(lib) for lib in libraries)
                and not {"site-packages", "dist-packages"} & set(path.parts)
            ):
                gone[name] = module
    for name in gone:
        del sys.modules[name]
    return gone


def describe(exc: BaseException, roots: Iterable[Path] = ()) -> str:
    """One line: where the user's code failed (its innermost frame in the project) and why."""
    from stepgraph.engine import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc)  # names the file and the key itself
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}: {type(exc).__name__}: {exc.msg}"
    roots = list(roots)
    frames: list[traceback.FrameSummary] = list(traceback.extract_tb(exc.__traceback__))
    mine = [f for f in frames if any(Path(f.filename).resolve().is_relative_to(root) for root in roots)]
    frames = mine or frames
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{where}{type(exc).__name__}: {message}" if message else f"{where}{type(exc).__name__}"


def _fixed_settings(graphs: GraphRegistry) -> tuple[Any, ...]:
    return (graphs.auth_ref, graphs.disabled, json.dumps(graphs.cors, sort_keys=True, default=str))


def _names(paths: list[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
