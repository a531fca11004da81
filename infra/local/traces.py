"""`stepgraph trace <run_id>`: a run's spans, read back from the JSON-lines trace file that
`stepgraph dev` writes (stepgraph.tracing), printed as a tree with durations."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Where `stepgraph dev` writes spans unless STEPGRAPH_TRACE_FILE (or an OTLP endpoint) says otherwise.
DEFAULT_TRACE_FILE = Path(".stepgraph") / "traces.jsonl"

__all__ = ["DEFAULT_TRACE_FILE", "default_trace_file", "read_spans", "run_trace", "span_tree"]

# Attributes worth a glance in the tree, in this order.
_SHOWN = ("run_id", "node", "superstep", "checkpoint_id", "outcome", "status", "http.response.status_code")


def default_trace_file() -> Path:
    return Path(os.environ.get("STEPGRAPH_TRACE_FILE") or DEFAULT_TRACE_FILE)


def read_spans(path: Path) -> list[dict[str, Any]]:
    """Every span in the file; a line cut short by a writer still at work is skipped."""
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            spans.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return spans


def run_trace(spans: Iterable[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The spans of every trace that has a span of the run (its request, dispatch, steps, park,
    finish, webhook), in start order."""
    spans = list(spans)
    traces = {s["trace_id"] for s in spans if (s.get("attributes") or {}).get("run_id") == run_id}
    return sorted((s for s in spans if s["trace_id"] in traces), key=lambda s: s["start_ns"])


def span_tree(spans: list[dict[str, Any]]) -> list[str]:
    """Lines of the tree: a span under its parent, its duration, and its telling attributes. A
    span whose parent is not in the file (the caller's own) is a root."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        children.setdefault(s["parent_id"] if s["parent_id"] in ids else None, []).append(s)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in children.get(parent, []):
            attributes = s.get("attributes") or {}
            shown = " ".join(f"{k}={attributes[k]}" for k in _SHOWN if k in attributes)
            lines.append(f"{'  ' * depth}{s['name']}  {s['duration_ms']:.1f} ms  {shown}".rstrip())
            walk(s["span_id"], depth + 1)

    for trace_id in dict.fromkeys(s["trace_id"] for s in spans):
        lines.append(f"trace {trace_id}")
        for root in [r for r in children.get(None, []) if r["trace_id"] == trace_id]:
            children.setdefault("__root__" + trace_id, []).append(root)
        walk("__root__" + trace_id, 1)
    return lines


def print_run_trace(run_id: str, path: Path) -> int:
    if not path.exists():
        print(f"stepgraph trace: no trace file at {path} (is STEPGRAPH_TRACE_FILE set as for `stepgraph dev`?)")
        return 2
    spans = run_trace(read_spans(path), run_id)
    if not spans:
        print(f"stepgraph trace: no spans of run {run_id} in {path}")
        return 1
    print("\n".join(span_tree(spans)))
    return 0
