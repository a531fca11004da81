"""stepgraph's local runtime: the AWS stack of `template.yaml` emulated in-process by moto."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .template import load_template

if TYPE_CHECKING:
    from .aws import LocalAWS

__all__ = ["LocalAWS", "load_template"]


def __getattr__(name: str) -> type[LocalAWS]:  # LocalAWS imports moto (~1.5 s); load_template alone does not
    if name == "LocalAWS":
        from .aws import LocalAWS

        return LocalAWS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
