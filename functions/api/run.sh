#!/bin/bash
# Lambda Web Adapter entry point: serve the app on the port the adapter forwards to.
exec python -m uvicorn --port "${PORT:-8080}" --no-access-log app:app
