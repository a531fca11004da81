"""The record of what a patch module replaced in a library, so that it can be given back."""

from __future__ import annotations

from typing import Any

_ABSENT = object()


class Patches:
    """Attributes replaced on classes and modules, undone last first by `revert`."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def __bool__(self) -> bool:
        return bool(self._saved)

    def replace(self, owner: Any, name: str, replacement: Any) -> Any:
        """Set `owner.name`; return what it was, as stored (a class's own staticmethod or property)."""
        stored = vars(owner).get(name, _ABSENT)  # _ABSENT: inherited, so reverting deletes ours
        original = getattr(owner, name) if stored is _ABSENT else stored
        self._saved.append((owner, name, stored))
        setattr(owner, name, replacement)
        return original

    def revert(self) -> None:
        while self._saved:
            owner, name, stored = self._saved.pop()
            if stored is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, stored)
