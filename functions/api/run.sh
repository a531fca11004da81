#!/bin/bash
# Lambda Web Adapter entry point: serve the app on the port the adapter forwards to. The Python
# runtime's bootstrap, which puts layers on the path, does not start this interpreter: the layer
# (/opt/python: the stepgraph package and its dependencies) goes on it here, after the function.
PYTHONPATH="$LAMBDA_TASK_ROOT:${PYTHONPATH:+$PYTHONPATH:}/opt/python" \
    exec python -m uvicorn --port "${PORT:-8080}" --no-access-log app:app
