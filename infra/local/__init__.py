"""stepgraph's local runtime: the AWS stack of `template.yaml` emulated in-process by moto."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aws import LocalAWS
    from .template import load_template

__all__ = ["LocalAWS", "load_template"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: LocalAWS imports moto (~1.5 s), load_template PyYAML; neither is there
    # without the `local` extra, and `stepgraph dev` says so instead of failing on import.
    if name == "LocalAWS":
        from .aws import LocalAWS

        return LocalAWS
    if name == "load_template":
        from .template import load_template

        return load_template
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
