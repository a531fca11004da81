"""LangGraph Studio against `stepgraph dev`: the link the peer prints, CORS for Studio's origin (dev
only: a deployment serves exactly its `http.cors`), and the browser tab the peer opens."""

from __future__ import annotations

import inspect
import logging
import os
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("stepgraph.local")

STUDIO_ORIGIN = "https://smith.langchain.com"
# What the SDKs read from a response besides its body (pagination, a created run's location).
_EXPOSED = ["X-Pagination-Total", "X-Pagination-Next", "Content-Location", "Location"]


def studio_url(host: str, port: int) -> str:
    """Studio pointed at this server, as `langgraph dev` prints it."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # Studio runs in this machine's browser
    if ":" in host:
        host = f"[{host}]"
    return f"{STUDIO_ORIGIN}/studio/?baseUrl=http://{host}:{port}"


def dev_cors(user: dict[str, Any] | None) -> dict[str, Any]:
    """CORSMiddleware's arguments in dev: Studio's origin, merged into the project's `http.cors`
    when it has one (set for the project's own front end, it should not lock Studio out of the
    dev server); without one, Studio's origin only, not the peer's `*`, since a dev server has no
    API key and any page the browser opens could otherwise drive it."""
    # Chrome asks a page on the internet (Studio) for leave to call a private address (127.0.0.1)
    # in the preflight (Private Network Access); Starlette grants it when told to.
    private_network = {"allow_private_network": True} if _answers_private_network() else {}
    if user is None:
        return {
            "allow_origins": [STUDIO_ORIGIN],
            "allow_methods": ["*"],
            "allow_headers": ["*"],
            "allow_credentials": True,
            "expose_headers": _EXPOSED,
            **private_network,
        }
    origins = user.get("allow_origins") or []
    origins = [origins] if isinstance(origins, str) else list(origins)
    if "*" not in origins and STUDIO_ORIGIN not in origins:
        origins.append(STUDIO_ORIGIN)
    return {**private_network, **user, "allow_origins": origins}


def _answers_private_network() -> bool:
    from starlette.middleware.cors import CORSMiddleware

    return "allow_private_network" in inspect.signature(CORSMiddleware).parameters


def should_open_browser(no_browser: bool, env: Mapping[str, str] = os.environ) -> bool:
    """The peer opens Studio unless --no-browser; here also never under CI, and on Linux only
    with a display (a headless machine's `webbrowser` would start a text browser in the terminal)."""
    if no_browser or env.get("CI"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def open_when_serving(url: str, host: str, port: int, timeout: float = 30) -> threading.Thread:
    """Open `url` in a browser once the server accepts connections (Studio calls it at once)."""

    def wait_then_open() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), 1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            logger.warning("the server did not start listening within %ss: Studio not opened", timeout)
            return
        if not webbrowser.open(url):
            logger.warning("no browser to open Studio in; open %s yourself", url)

    thread = threading.Thread(target=wait_then_open, name="open-studio", daemon=True)
    thread.start()
    return thread
