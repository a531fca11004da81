"""Packaging by role: the engine installs alone, `[local]` adds the emulator and the web app, and a
wheel (not the repository) is all `stepgraph dev` needs."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from harness import free_port
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIP_QUIET = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _would_install(extras: set[str]) -> set[str]:
    """The distributions `pip install stepgraph[extras]` puts into an empty environment: the closure
    of the requirements (markers evaluated, each dependency's own extras followed) over this
    environment's installed metadata, which holds a superset of them. No index needed."""
    seen: set[str] = set()
    todo = [("stepgraph", extras)]
    while todo:
        name, wanted = todo.pop()
        if name in seen and not wanted:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                todo.append((canonicalize_name(requirement.name), set(requirement.extras)))
    return seen - {"stepgraph"}


def test_the_engine_installs_without_the_emulator_or_the_web_app() -> None:
    core = _would_install(set())
    assert {"langgraph", "langgraph-checkpoint", "pydantic", "aws-lambda-powertools", "boto3", "orjson"} <= core
    assert not core & {
        "moto",
        "fastapi",
        "uvicorn",
        "starlette",
        "a2a-sdk",
        "werkzeug",
        "flask",
        "cfn-lint",
        "aws-sam-cli",
    }


def test_the_local_extra_brings_what_stepgraph_dev_needs() -> None:
    local = _would_install({"local"})
    assert {"moto", "fastapi", "uvicorn", "a2a-sdk", "pyyaml", "flask", "flask-cors", "langgraph"} <= local
    assert "watchfiles" in local  # stepgraph dev --reload
    assert not local & {"cfn-lint", "aws-sam-cli", "pytest"}  # test tools stay in `test`


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dist), "."],
        cwd=ROOT,
        env=PIP_QUIET,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = dist.glob("stepgraph-*.whl")
    unpacked = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    return unpacked


def test_the_wheel_carries_the_stack_as_files(unpacked_wheel: Path) -> None:
    stack = unpacked_wheel / "stepgraph_local" / "stack"
    for name in ("template.yaml", "statemachine/run.asl.json", "functions/step/app.py", "examples/langgraph.json"):
        path = stack / name
        assert path.is_file() and not path.is_symlink(), name


def test_stepgraph_dev_runs_from_the_wheel_alone(unpacked_wheel: Path, tmp_path: Path) -> None:
    """A clean interpreter that sees the wheel and the third-party packages, but not this checkout
    (no `.pth` processing, so no editable install), started outside it: the template, the ASL, the
    handlers and the example graphs all come from the package."""
    port = free_port()
    site_packages = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(unpacked_wheel), site_packages])}
    server = subprocess.Popen(
        [sys.executable, "-S", "-m", "stepgraph_local.cli", "dev", "--port", str(port), "--no-browser"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                pytest.fail(f"server exited: {server.stdout.read() if server.stdout else ''}")
            try:
                if httpx.get(url + "/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("server did not become ready")
        thread = httpx.post(url + "/threads", json={}).json()
        run = httpx.post(
            f"{url}/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "chain", "input": {"items": []}},
            timeout=30,
        )
        assert run.status_code == 200, run.text
        assert run.json()["items"] == ["a", "b", "c"]
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=10)
    assert "stepgraph: serving chain, loop, approval" in out and str(unpacked_wheel) in out, out


def test_without_the_local_extra_the_cli_says_what_to_install() -> None:
    """The engine alone installed: moto, FastAPI, uvicorn and PyYAML cannot be imported."""
    probe = (
        "import sys; sys.modules.update(dict.fromkeys(['moto', 'fastapi', 'uvicorn', 'yaml']));"
        "from stepgraph_local import cli; sys.exit(cli.main(['dev', '--port', '1']))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "pip install 'stepgraph[local]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_mcp_sdk_comes_with_the_api_not_with_the_engine() -> None:
    assert "mcp" in _would_install({"api"}) and "mcp" not in _would_install(set())
