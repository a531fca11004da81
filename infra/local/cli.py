"""`stepgraph dev`: the local server, started the way `langgraph dev` is; `stepgraph cost`: a run's AWS bill."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path

# What the local runtime needs beyond the engine: the `local` extra.
_LOCAL_EXTRA = ("moto", "fastapi", "uvicorn", "yaml")


def _missing_local_extra() -> list[str]:
    return [name for name in _LOCAL_EXTRA if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stepgraph", description="serverless LangGraph Agent Server")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run the local server (AWS emulated in-process)")
    dev.add_argument(
        "--config", type=Path, default=None, help="langgraph.json (default: ./langgraph.json, else the examples)"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=2024)
    dev.add_argument("--step-mode", choices=["batched", "strict"], default=None, help="supersteps per Step invocation")
    dev.add_argument(
        "--reload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reload the graphs when a project file changes, keeping threads and runs (default: on)",
    )
    dev.add_argument(
        "--no-browser", action="store_true", help="do not open Studio (never opened under CI or without a display)"
    )
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the emulated AWS is kept (default: .stepgraph/ beside langgraph.json)",
    )
    dev.add_argument("--ephemeral", action="store_true", help="keep nothing: the state lives in memory only")
    # The same runtime split in two processes: the Lambdas' process can be killed and restarted
    # while the emulated AWS (and every run's state) lives on.
    aws = sub.add_parser("aws", help="run the emulated AWS only; Lambdas run in `stepgraph worker`")
    aws.add_argument("--port", type=int, required=True)
    aws.add_argument("--worker-url", required=True, help="where `stepgraph worker` listens")
    aws.add_argument("--env-file", type=Path, required=True, help="written when ready: the workers' environment")
    aws.add_argument("--config", type=Path, default=None, help="langgraph.json (default: the examples)")
    aws.add_argument("--step-mode", choices=["batched", "strict"], default=None)
    worker = sub.add_parser("worker", help="run the Lambda handlers (and the run-queue poller) for `stepgraph aws`")
    worker.add_argument("--port", type=int, required=True)
    worker.add_argument("--env-file", type=Path, required=True, help="the file `stepgraph aws` wrote")
    worker.add_argument("--api-port", type=int, default=None, help="also serve the API here")
    from .cost import add_cost_command, cost_command

    add_cost_command(sub)
    trace = sub.add_parser("trace", help="print a run's span tree (from the trace file `stepgraph dev` writes)")
    trace.add_argument("run_id")
    trace.add_argument(
        "--file", type=Path, default=None, help="default: $STEPGRAPH_TRACE_FILE, else .stepgraph/traces.jsonl"
    )
    args = parser.parse_args(argv)
    if args.command == "cost":  # needs the engine only, not the local runtime
        return cost_command(args)
    if args.command == "trace":
        from .traces import default_trace_file, print_run_trace

        return print_run_trace(args.run_id, args.file or default_trace_file())
    missing = _missing_local_extra()
    if missing:
        print(
            f"stepgraph {args.command}: the local runtime is not installed (missing {', '.join(missing)}); "
            "install it with: pip install 'stepgraph[local]'",
            file=sys.stderr,
        )
        return 2
    from .runtime import PortInUse, serve
    from .template import EXAMPLES_CONFIG

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "aws":
        from .split import serve_aws

        serve_aws(
            port=args.port,
            worker_url=args.worker_url,
            env_file=args.env_file,
            config_path=args.config or EXAMPLES_CONFIG,
            step_mode=args.step_mode,
        )
        return 0
    if args.command == "worker":
        from .split import serve_worker

        serve_worker(port=args.port, env_file=args.env_file, api_port=args.api_port)
        return 0
    config = args.config
    if config is None:
        config = Path("langgraph.json") if Path("langgraph.json").exists() else EXAMPLES_CONFIG
    if not config.exists():
        print(f"stepgraph: {config} not found", file=sys.stderr)
        return 2
    from stepgraph.engine import ConfigError

    from .persistence import DataDirError
    from .traces import DEFAULT_TRACE_FILE

    # Spans go to an OTLP endpoint when one is set, else to this file (`stepgraph trace` reads it).
    os.environ.setdefault("STEPGRAPH_TRACE_FILE", str(DEFAULT_TRACE_FILE.resolve()))

    try:
        from .studio import should_open_browser

        # Beside the project's langgraph.json; for the bundled examples (maybe inside an installed
        # package), in the working directory.
        project = Path.cwd() if config.resolve() == EXAMPLES_CONFIG.resolve() else config.resolve().parent
        serve(
            config.resolve(),
            args.host,
            args.port,
            args.step_mode,
            reload=args.reload,
            open_browser=should_open_browser(args.no_browser),
            data_dir=None if args.ephemeral else (args.data_dir or project / ".stepgraph"),
        )
    except PortInUse as exc:
        print(f"stepgraph: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # langgraph.json, or a file it names, cannot be served as written
        print(f"stepgraph: {exc}", file=sys.stderr)
        return 2
    except DataDirError as exc:  # held by another server, or written by another version
        print(f"stepgraph: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("stepgraph").info("stopped (Ctrl-C)")  # the user's way to stop the server
    return 0


if __name__ == "__main__":
    sys.exit(main())
