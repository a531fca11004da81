"""`stepgraph dev`: the local server, started the way `langgraph dev` is."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stepgraph_local.runtime import EXAMPLES_CONFIG, PortInUse, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stepgraph", description="serverless LangGraph Agent Server")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run the local server (AWS emulated in-process)")
    dev.add_argument("--config", type=Path, default=None, help="langgraph.json (default: ./langgraph.json, else the examples)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=2024)
    dev.add_argument("--step-mode", choices=["batched", "strict"], default=None, help="supersteps per Step invocation")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = args.config
    if config is None:
        config = Path("langgraph.json") if Path("langgraph.json").exists() else EXAMPLES_CONFIG
    if not config.exists():
        print(f"stepgraph: {config} not found", file=sys.stderr)
        return 2
    try:
        serve(config.resolve(), args.host, args.port, args.step_mode)
    except PortInUse as exc:
        print(f"stepgraph: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
