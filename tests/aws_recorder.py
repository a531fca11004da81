"""A stand-in for the user's own AWS endpoints on 127.0.0.1: records each request and answers
S3 ListBuckets and DynamoDB ListTables with names that exist nowhere in the emulator."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USER_BUCKET = "users-own-bucket"
USER_TABLE = "users-own-table"


class AwsRecorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return None

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                if "ListTables" in (self.headers.get("X-Amz-Target") or ""):
                    body, kind = f'{{"TableNames": ["{USER_TABLE}"]}}'.encode(), "application/x-amz-json-1.0"
                else:
                    body = (
                        '<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult '
                        'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>user</ID></Owner><Buckets>'
                        f"<Bucket><Name>{USER_BUCKET}</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate>"
                        "</Bucket></Buckets></ListAllMyBucketsResult>"
                    ).encode()
                    kind = "application/xml"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="aws-recorder", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
