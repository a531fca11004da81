"""What the API answers when a request cannot be served: the peer's `{"detail": ...}` HTTP errors
(the handlers that map engine errors to them are in `app`) and the protocol's command errors."""

from __future__ import annotations

from fastapi import HTTPException

__all__ = ["CommandError", "not_found"]


def not_found(what: str) -> HTTPException:
    return HTTPException(404, f"{what} not found")


class CommandError(Exception):
    """A protocol command that failed: answered as `{"type": "error", "error": code, ...}`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message
