"""api: the FastAPI app. On AWS the Lambda Web Adapter runs it under uvicorn (run.sh), which
gives SSE response streaming through the Function URL."""

from stepgraph.api import create_app
from stepgraph.engine import current_context

app = create_app(current_context())
