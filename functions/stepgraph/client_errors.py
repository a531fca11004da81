"""What clients are told about errors: the one place an exception's text is shaped before it leaves
the process (a run's `error` event and document, hence wait/join bodies and streams; a thread
state's task errors; the API's `detail`s).

A graph's exception keeps its type and, for the types the peer shows, its message; nothing told
carries an AWS account id, an ARN, an access key id or a traceback. Our own failures (AWS errors
past their retries, bugs) are logged with their traceback under an id the client is given.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

__all__ = ["INTERNAL_ERROR", "error_payload", "failure_payload", "internal_error", "redact"]

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "An internal error occurred"

# Exception types whose message the peer passes to clients; others become INTERNAL_ERROR.
_PUBLIC_ERRORS = frozenset(
    {
        "ValueError",
        "TypeError",
        "KeyError",
        "AttributeError",
        "RuntimeError",
        "RecursionError",
        "TimeoutError",
        "InvalidUpdateError",
        "GraphBubbleUp",
        "EmptyInputError",
        "HTTPException",
        "UserInterrupt",
        "GraphRecursionError",
    }
)

# An ARN of any partition (aws, aws-cn, aws-us-gov...), up to the next delimiter.
_ARN = re.compile(r"\barn:aws[a-z-]*:[^\s\"'`<>,;()\[\]{}]*", re.IGNORECASE)
# A 12-digit number on its own: an account id (not part of a longer number, word or UUID).
_ACCOUNT_ID = re.compile(r"(?<![\w-])\d{12}(?![\w-])")
# Long-term (AKIA) and temporary (ASIA) access key ids.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
# A formatted traceback, to its end, and the frame lines of one quoted on their own.
_TRACEBACK = re.compile(r"\s*Traceback \(most recent call last\):.*", re.DOTALL)
_FRAME = re.compile(r"^[ \t]*File \"[^\"\n]*\", line \d+[^\n]*\n?(?:[ \t]{4,}[^\n]*\n?)?", re.MULTILINE)


def redact(text: str) -> str:
    """`text` without ARNs, account ids, access key ids and tracebacks."""
    text = _TRACEBACK.sub("", text)
    text = _FRAME.sub("", text)
    text = _ARN.sub("<arn>", text)
    text = _ACCESS_KEY_ID.sub("<access-key-id>", text)
    return _ACCOUNT_ID.sub("<account-id>", text).strip()


def error_payload(exc: BaseException) -> dict[str, str]:
    """A graph's exception as the run's `error` event and document carry it (the peer's shape)."""
    name = type(exc).__name__
    return {"error": name, "message": redact(str(exc)) if name in _PUBLIC_ERRORS else INTERNAL_ERROR}


def failure_payload(error: str, cause: str) -> dict[str, str]:
    """A run's failure as Step Functions reported it (a step that crashed past its retries, an
    execution that ended without Finish): the error name, and its cause's message redacted."""
    return {"error": redact(error) or "StepFailed", "message": redact(cause)}


def internal_error(exc: BaseException, where: str, **context: Any) -> str:
    """Log an unexpected exception, traceback included, under a new id; the text a client gets."""
    error_id = uuid.uuid4().hex
    logger.error("internal error %s in %s %s", error_id, where, context or "", exc_info=exc)
    return f"Internal error (id {error_id})"
