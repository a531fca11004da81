"""A Lambda execution environment for one built function, for tests/functional/test_build.py.

Run by a clean interpreter (`python -I -S lambda_sandbox.py FUNCTION_DIR HANDLER PORT READY_FILE
--layer LAYER_DIR ...`): no site-packages, no PYTHON* variables, not even this file's folder on
the path. It puts the function's folder and each layer's `python/` folder in front of the standard
library, as `/var/task` and `/opt/python` are on Lambda, imports the handler (Lambda's init phase),
writes to READY_FILE what the interpreter can import and from where, then answers the invocations
`stepgraph_local.split.LambdaForwarder` sends (as `stepgraph worker` does). Standard library only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Context:
    """What the Python runtime passes a handler (enough for Powertools)."""

    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(self, name: str, arn: str, memory_mb: int, remaining_ms: int):
        self.function_name, self.invoked_function_arn, self.memory_limit_in_mb = name, arn, memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("function_dir")
    parser.add_argument("handler", help="module.attr, as the template's Handler")
    parser.add_argument("port", type=int, help="0: any free port (READY_FILE says which)")
    parser.add_argument("ready_file", type=Path)
    parser.add_argument("--layer", action="append", default=[], help="a layer's folder (its python/ is imported)")
    parser.add_argument("--probe", action="append", default=[], help="a module to try to import")
    args = parser.parse_args()

    sys.path[:0] = [args.function_dir, *(str(Path(layer) / "python") for layer in args.layer)]
    module_name, _, attr = args.handler.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attr)
    importable = {}
    for name in args.probe:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            importable[name] = f"no: {exc}"
        else:
            importable[name] = "yes"
    # Where each module came from (a namespace package: its first folder; built-ins: None).
    loaded = {
        name: getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), None)
        for name, module in list(sys.modules.items())
    }

    class Invocations(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self._reply({"ok": True})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            name = self.path.rsplit("/", 1)[-1]
            context = Context(name, request["function_arn"], request["memory_mb"], request["remaining_ms"])
            try:
                reply = {"result": handler(request["event"], context)}
            except Exception as exc:  # as the Lambda runtime: the error is the reply, and logged
                logging.getLogger(name).exception("unhandled %s in handler", type(exc).__name__)
                reply = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            self._reply(reply)

        def _reply(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Invocations)
    server.daemon_threads = True
    ready = {"port": server.server_address[1], "sys_path": sys.path, "importable": importable, "loaded": loaded}
    args.ready_file.with_suffix(".tmp").write_text(json.dumps(ready))
    args.ready_file.with_suffix(".tmp").replace(args.ready_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
