"""The record of what a patch module replaced in moto, so that it can be given back."""

from __future__ import annotations

from typing import Any


class Patches:
    """Attributes replaced on classes and modules, put back last first by `revert`."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def __bool__(self) -> bool:
        return bool(self._saved)

    def replace(self, owner: Any, name: str, replacement: Any) -> Any:
        """Set `owner.name`, one of the owner's own attributes; return it as stored (a class's own
        staticmethod or classmethod, not the function it wraps)."""
        original = vars(owner)[name]
        self._saved.append((owner, name, original))
        setattr(owner, name, replacement)
        return original

    def revert(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            setattr(owner, name, original)
