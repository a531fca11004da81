"""The redaction every error text passes before a client sees it (stepgraph.client_errors)."""

from __future__ import annotations

import traceback

from stepgraph.client_errors import INTERNAL_ERROR, error_payload, failure_payload, redact


def test_arns_account_ids_and_access_keys_are_masked_and_the_rest_is_kept():
    text = (
        "User: arn:aws:sts::123456789012:assumed-role/Role-1/fn is not authorized to perform: "
        "states:StopExecution on resource: arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:m:r "
        "(account 123456789012, key AKIAIOSFODNN7EXAMPLE)"
    )
    assert redact(text) == (
        "User: <arn> is not authorized to perform: states:StopExecution on resource: <arn> "
        "(account <account-id>, key <access-key-id>)"
    )


def test_ids_that_merely_contain_twelve_digits_are_left_alone():
    text = "run 0195c2a4-1b2c-7d3e-8f40-123456789012 at 1733240000123, order 1234567890123"
    assert redact(text) == text


def test_tracebacks_are_cut():
    try:
        raise ValueError("inner")
    except ValueError:
        formatted = traceback.format_exc()
    assert redact(f"failed: {formatted}") == "failed:"
    frame = '  File "/var/task/stepgraph/engine/runner.py", line 3, in step\n    raise X\n'
    assert redact(f"bad value\n{frame}more") == "bad value\nmore"


def test_a_graph_error_keeps_its_type_and_a_shown_message():
    assert error_payload(ValueError("bad")) == {"error": "ValueError", "message": "bad"}
    assert error_payload(RuntimeError("on arn:aws:s3:::bucket/key")) == {
        "error": "RuntimeError",
        "message": "on <arn>",
    }
    # As the peer: the message of any other type is not shown.
    assert error_payload(ConnectionError("10.0.0.1 refused")) == {"error": "ConnectionError", "message": INTERNAL_ERROR}
    assert failure_payload("States.Timeout", "") == {"error": "States.Timeout", "message": ""}
