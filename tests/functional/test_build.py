"""`sam build` builds the stack, and what it builds runs on its own.

Two builds of the example project at once: for Lambda (the default target: what is deployed,
checked for its binaries and its size) and for this machine's Python (`STEPGRAPH_BUILD_TARGET=
host`: the same files, with wheels this interpreter can load). Then every function of the
template runs from the host build alone: a clean interpreter whose path holds the function's
folder, its layers' `python/` folders and the standard library (`lambda_sandbox.py`; the API as
the Lambda Web Adapter starts it, through its run.sh), against a moto server in this process
provisioned from the built template, whose Lambda invokes reach those interpreters
(`stepgraph_local.split.LambdaForwarder`) and whose run queue feeds dispatch (`QueuePoller`).
Each function handles its sample event (events/, sample_events.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import mcp_session, stop_process
from sam_artifacts import artifacts
from sample_events import ROOT, SCENARIOS, Stage, functions, http_request, sample_event
from stepgraph_local import load_template

TEMPLATE = ROOT / "template.yaml"
EXAMPLES = ROOT / "examples" / "langgraph.json"
SAM = Path(sys.executable).parent / "sam"
SANDBOX = Path(__file__).with_name("lambda_sandbox.py")
LOCAL_RECEIVER = {"STEPGRAPH_WEBHOOK_LOCAL_NETWORK": "1"}

FUNCTIONS = functions(TEMPLATE)  # folder -> logical id
# Never in a Lambda package: the emulator and its web server, the test and deploy tools.
NEVER = ("moto", "flask", "werkzeug", "stepgraph_local", "pytest", "_pytest", "cfnlint", "samcli", "httpx_sse")
WEB = ("fastapi", "starlette", "uvicorn", "mcp")  # the API function's own


@dataclass
class Built:
    dir: Path
    template: dict[str, Any]
    seconds: float

    def code(self, name: str) -> Path:
        return self.dir / name

    def props(self, name: str) -> dict[str, Any]:
        return dict(self.template["Resources"][name]["Properties"])

    def layers(self, name: str) -> list[Path]:
        """The function's layers that this template builds (Globals' and its own)."""
        listed = (self.template.get("Globals", {}).get("Function", {}).get("Layers") or []) + (
            self.props(name).get("Layers") or []
        )
        refs = [layer["Ref"] for layer in listed if isinstance(layer, dict) and "Ref" in layer]
        return [self.dir / ref for ref in refs]


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _distributions(folder: Path) -> set[str]:
    return {artifacts.canonical(p.name.split("-")[0]) for p in folder.glob("*.dist-info")}


def _sam_build(target: str, out: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPGRAPH_", "AWS_"))}
    env.update(
        SAM_CLI_TELEMETRY="0", STEPGRAPH_BUILD_TARGET=target, STEPGRAPH_CONFIG=str(EXAMPLES), PYTHON=sys.executable
    )
    command = [str(SAM), "build", "--template-file", str(TEMPLATE), "--build-dir", str(out), "--parallel"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """Both at once (uv spends its time waiting on the registry): `lambda`, what is deployed, and
    `host`, the same for this interpreter, which the tests below run."""
    out = tmp_path_factory.mktemp("sam")
    start = time.monotonic()
    running = {target: _sam_build(target, out / target) for target in ("lambda", "host")}
    done = {}
    for target, proc in running.items():
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"sam build ({target}):\n{log[-5000:]}"
        done[target] = Built(out / target, load_template(out / target / "template.yaml"), time.monotonic() - start)
    return done


@pytest.fixture(scope="module")
def built(builds: dict[str, Built]) -> Built:
    return builds["host"]


@pytest.mark.parametrize("target", ["lambda", "host"])
def test_the_build_packages_each_role_and_nothing_twice(builds: dict[str, Built], target: str) -> None:
    built = builds[target]
    layer = built.dir / "CoreLayer"
    python = layer / "python"
    assert (python / "stepgraph" / "engine" / "__init__.py").is_file()
    assert not (python / "stepgraph_local").exists()
    # The project at /opt/project, as template.yaml's LangGraphConfig default says.
    default = load_template(TEMPLATE)["Parameters"]["LangGraphConfig"]["Default"]
    assert default == "/opt/project/langgraph.json"
    assert json.loads((layer / "project" / "langgraph.json").read_text()) == json.loads(EXAMPLES.read_text())
    assert (layer / "project" / "graphs.py").is_file()
    in_layer = _distributions(python)
    assert {"langgraph", "langgraph-checkpoint", "pydantic", "aws-lambda-powertools", "boto3", "orjson"} <= in_layer
    api = built.code(FUNCTIONS["api"])
    assert {"fastapi", "starlette", "uvicorn", "mcp"} <= _distributions(api)
    assert not _distributions(api) & in_layer, "the API function repeats what its layer holds"
    for folder, name in FUNCTIONS.items():
        code = built.code(name)
        for top in (*NEVER, *(() if folder == "api" else WEB)):
            assert not (code / top).exists() and not (python / top).exists(), f"{top} packaged with {name}"
        if folder != "api":  # the handler, nothing else
            source = ROOT / load_template(TEMPLATE)["Resources"][name]["Properties"]["CodeUri"]
            assert {p.name for p in code.iterdir()} == {p.name for p in source.iterdir() if p.name != "__pycache__"}
    assert os.access(api / "run.sh", os.X_OK)


def test_every_function_fits_lambdas_unzipped_limit(
    builds: dict[str, Built], record_counts: Callable[..., None]
) -> None:
    """What is deployed (the lambda build): Lambda counts a function and its layers together (the
    API's Web Adapter layer, not built here, adds a few MB on AWS)."""
    built = builds["lambda"]
    sizes = {
        name: _size(built.code(name)) + sum(_size(layer) for layer in built.layers(name)) for name in FUNCTIONS.values()
    }
    record_counts("sam build", {target: f"{b.seconds:.1f} s" for target, b in builds.items()})
    record_counts("unzipped MB, function + layers", {n: round(s / 1e6, 1) for n, s in sizes.items()})
    assert all(size < artifacts.LAMBDA_UNZIPPED_LIMIT for size in sizes.values()), sizes


_ELF_MACHINES = {0xB7: "aarch64", 0x3E: "x86_64"}


def test_the_lambda_build_holds_binaries_for_lambdas_python_on_arm64(builds: dict[str, Built]) -> None:
    built = builds["lambda"]
    glob = built.template["Globals"]["Function"]
    assert glob["Runtime"] == "python" + artifacts.LAMBDA_PYTHON
    assert glob["Architectures"] == ["arm64"] and artifacts.LAMBDA_PLATFORM.startswith("aarch64-")
    tags = {
        wheel.parent.name: [
            line.split(": ", 1)[1] for line in wheel.read_text().splitlines() if line.startswith("Tag: ")
        ]
        for wheel in built.dir.glob("*/**/*.dist-info/WHEEL")
    }
    native = {dist: t for dist, t in tags.items() if not all(tag.endswith("-none-any") for tag in t)}
    assert native, "no compiled distribution at all: pydantic-core, orjson... are"
    for dist, dist_tags in native.items():
        assert all("aarch64" in t and ("cp312" in t or "abi3" in t) for t in dist_tags), (dist, dist_tags)
    machines = {}
    for library in built.dir.glob("**/*.so"):
        with open(library, "rb") as elf:
            header = elf.read(20)
        machines[library.name] = _ELF_MACHINES.get(int.from_bytes(header[18:20], "little"), header[18:20].hex())
    assert machines and set(machines.values()) == {"aarch64"}, machines


# ---------------------------------------------------------------- the artifacts, running
@dataclass
class Running:
    stage: Stage
    ready: dict[str, dict[str, Any]]  # function -> what its sandbox imported (Python handlers)
    api_pid: int
    api_url: str


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n{log.read_text()[-5000:]}")
        time.sleep(0.05)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def running(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    from moto.server import ThreadedMotoServer
    from stepgraph.engine import Context
    from stepgraph.settings import Settings
    from stepgraph_local.aws import LocalAWS
    from stepgraph_local.runtime import QueuePoller, _function_for_queue
    from stepgraph_local.split import LambdaForwarder, free_port

    work = tmp_path_factory.mktemp("lambdas")
    python_handlers = [n for n in FUNCTIONS.values() if not built.props(n)["Handler"].endswith(".sh")]
    # Where each function's sandbox listens: known once it has started (it picks a free port).
    forwarders: dict[str, LambdaForwarder] = {}

    def invoke(name: str) -> Callable[[Any, Any], Any]:
        return lambda event, context: forwarders[name](event, context)

    moto_port = free_port()
    with ExitStack() as cleanup, pytest.MonkeyPatch.context() as env:
        env.setenv("MOTO_PORT", str(moto_port))  # Step Functions' tasks call this server back
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        server.start()
        cleanup.callback(server.stop)
        aws = LocalAWS(
            built.dir / "template.yaml",
            parameters={"LangGraphConfig": str(built.dir / "CoreLayer" / "project" / "langgraph.json")},
            handlers={n: invoke(n) for n in python_handlers},
            endpoint_url=f"http://127.0.0.1:{moto_port}",
        ).start()
        cleanup.callback(aws.stop)
        # Each function's environment as deployed (the template's, resolved), plus where the
        # emulated account is: no variable of this process's.
        account = {k: v for k, v in aws.exported_environment.items() if k not in aws.environment}
        base = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **account}

        def spawn(name: str, command: list[str], extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
            code, log = built.code(name), work / f"{name}.log"
            env = {**base, **aws.function_environments[name], "LAMBDA_TASK_ROOT": str(code), **extra}
            with open(log, "wb") as out:  # the child writes through its own descriptor
                proc = subprocess.Popen(command, cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT)
            cleanup.callback(stop_process, proc)
            return proc, log

        # Bytecode goes elsewhere, as on Lambda's read-only /var/task and /opt: the artifacts stay
        # as built, and the interpreters share what the first one compiled.
        python = [sys.executable, "-X", f"pycache_prefix={work / 'pycache'}"]

        def sandbox(name: str) -> None:
            layers = [arg for layer in built.layers(name) for arg in ("--layer", str(layer))]
            probes = [arg for module in (*NEVER, *WEB) for arg in ("--probe", module)]
            command = [*python, "-I", "-S", str(SANDBOX), str(built.code(name)), built.props(name)["Handler"]]
            command += ["0", str(work / f"{name}.ready"), *layers, *probes]
            # The sample receiver listens on this machine's loopback, which a deployed webhook
            # function does not post to unless told (webhooks.url, or this setting).
            started[name] = spawn(name, command, LOCAL_RECEIVER if name == FUNCTIONS["webhook"] else {})

        started: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        first, *others = python_handlers
        sandbox(first)
        _wait((work / f"{first}.ready").exists, *started[first], first)
        for name in others:
            sandbox(name)
        # The API as the Lambda Web Adapter starts it: its run.sh, on PORT, with `python` the
        # runtime's interpreter (here: this one, without site-packages) and the layer where
        # /opt/python would be.
        api, api_port = FUNCTIONS["api"], free_port()  # the adapter forwards to a fixed PORT
        (work / "bin").mkdir()
        (work / "bin" / "python").write_text("#!/bin/sh\nexec " + " ".join(f'"{a}"' for a in python) + ' -S "$@"\n')
        (work / "bin" / "python").chmod(0o755)
        layer_paths = os.pathsep.join(str(layer / "python") for layer in built.layers(api))
        api_env = {"PATH": f"{work / 'bin'}:{os.environ['PATH']}", "PORT": str(api_port), "PYTHONPATH": layer_paths}
        api_proc, api_log = spawn(api, [str(built.code(api) / built.props(api)["Handler"])], api_env)

        for name in others:
            _wait((work / f"{name}.ready").exists, *started[name], name)
        api_url = f"http://127.0.0.1:{api_port}"
        _wait(lambda: _answers(api_url + "/ok"), api_proc, api_log, api)  # after its startup: assistants made

        settings = dataclasses.replace(Settings.from_env(), config_path=str(EXAMPLES))
        ctx = Context(settings)
        queue_url = settings.run_queue_url
        poller = QueuePoller(queue_url, _function_for_queue(aws, queue_url), aws.client)
        poller.start()
        cleanup.callback(poller.join, 5)
        cleanup.callback(poller.stop)
        http = cleanup.enter_context(httpx.Client(base_url=api_url, timeout=60))
        ready = {n: json.loads((work / f"{n}.ready").read_text()) for n in python_handlers}
        forwarders.update({n: LambdaForwarder(f"http://127.0.0.1:{ready[n]['port']}", n) for n in python_handlers})
        yield Running(Stage(ctx, aws.client("lambda"), FUNCTIONS, http.request), ready, api_proc.pid, api_url)


@pytest.mark.parametrize("folder", sorted(FUNCTIONS))
def test_function_imports_from_its_artifacts_alone(built: Built, running: Running, folder: str) -> None:
    name = FUNCTIONS[folder]
    code, layers = built.code(name), [layer / "python" for layer in built.layers(name)]
    if name not in running.ready:  # the Web Adapter's script: the interpreter it started, and its path
        process = Path(f"/proc/{running.api_pid}")
        argv = process.joinpath("cmdline").read_bytes().decode().split("\0")
        assert "-S" in argv and argv[argv.index("-m") + 1] == "uvicorn", argv  # no site-packages
        environ = process.joinpath("environ").read_bytes().split(b"\0")
        pythonpath = next(v for v in environ if v.startswith(b"PYTHONPATH=")).decode().split("=", 1)[1]
        assert pythonpath.split(":") == [str(code), *map(str, layers), "/opt/python"]
        return
    ready = running.ready[name]
    path = ready["sys_path"]
    assert path[: 1 + len(layers)] == [str(code), *map(str, layers)]
    stdlib = path[1 + len(layers) :]
    assert stdlib and all(p.startswith(sys.base_prefix) and "site-packages" not in p for p in stdlib), path
    assert all(v.startswith("no:") for v in ready["importable"].values()), ready["importable"]  # moto, fastapi...
    loaded = ready["loaded"]
    assert loaded["app"] == str(code / "app.py")
    for module in ("stepgraph", "langgraph", "langchain_core", "pydantic_core", "aws_lambda_powertools"):
        assert loaded[module].startswith(str(layers[0])), (module, loaded[module])


@pytest.mark.parametrize("folder", sorted(FUNCTIONS))
def test_function_handles_its_sample_event_from_its_artifacts(running: Running, folder: str) -> None:
    SCENARIOS[folder](running.stage)


async def test_the_built_api_serves_every_assistant_as_an_mcp_tool(running: Running) -> None:
    """The `mcp` SDK's client against the API as the Web Adapter runs it: the mcp package is in
    the API function's build, and a tool call runs through the built functions."""
    key = http_request(sample_event("api"))["headers"]["x-api-key"]
    secret = running.stage.ctx.settings.api_key_secret_arn
    running.stage.ctx.clients.secretsmanager.put_secret_value(SecretId=secret, SecretString=key)
    async with mcp_session(running.api_url, {"x-api-key": key}) as session:
        assert "chain" in {tool.name for tool in (await session.list_tools()).tools}
        result = await session.call_tool("chain", {"items": ["built"]})
    assert not result.is_error and result.structured_content == {"items": ["built", "a", "b", "c"]}


def test_the_built_api_asks_for_the_deployments_api_key(running: Running) -> None:
    request = http_request(sample_event("api"))
    del request["headers"]["x-api-key"]
    refused = running.stage.send(**request)
    assert refused.status_code == 401 and "x-api-key" in refused.json()["detail"]


def test_the_built_api_serves_a2a_and_streams_its_tasks(running: Running) -> None:
    """A2A from the built API as the Web Adapter starts it: the agent card names the public URL
    (API Gateway's host and stage, from the request context the adapter forwards), and
    `message/stream`'s SSE goes submitted, working, the answer, completed (a2a-sdk's client)."""
    key = http_request(sample_event("api"))["headers"]["x-api-key"]
    ctx = running.stage.ctx
    ctx.clients.secretsmanager.put_secret_value(SecretId=ctx.settings.api_key_secret_arn, SecretString=key)
    gateway = {"domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com", "stage": "api"}
    gateway["path"] = "/api/a2a/chat/.well-known/agent-card.json"
    headers = {"x-api-key": key, "x-amzn-request-context": json.dumps(gateway)}
    card = running.stage.send("GET", "/a2a/chat/.well-known/agent-card.json", headers=headers)
    assert card.status_code == 200, card.text
    assistant_id = card.json()["skills"][0]["id"].removesuffix("-main")
    assert card.json()["url"] == f"https://{gateway['domainName']}/api/a2a/{assistant_id}"

    async def stream() -> list[str]:
        from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
        from a2a.types import Message, Part, Role, SendMessageRequest, TaskState

        async with httpx.AsyncClient(headers={"x-api-key": key}, timeout=60) as http:
            card = await A2ACardResolver(http, f"{running.api_url}/a2a/chat").get_agent_card()
            client = ClientFactory(ClientConfig(httpx_client=http)).create(card)
            message = Message(message_id="m1", role=Role.ROLE_USER, parts=[Part(text="hello")])
            seen = []
            async for event in client.send_message(SendMessageRequest(message=message)):
                if event.HasField("artifact_update"):
                    seen.append(event.artifact_update.artifact.parts[0].text)
                else:
                    status = event.task.status if event.HasField("task") else event.status_update.status
                    seen.append(TaskState.Name(status.state))
            return seen

    assert asyncio.run(stream()) == [
        "TASK_STATE_SUBMITTED",
        "TASK_STATE_WORKING",
        "Anything else?",
        "TASK_STATE_COMPLETED",
    ]
