"""What `sam build` puts in each artifact: `infra/sam/Makefile` runs this once per resource of
template.yaml, in SAM's copy of the resource's CodeUri, writing into its ARTIFACTS_DIR.

- `layer` (CoreLayer, `/opt` on Lambda): the core dependencies (pyproject.toml's `dependencies`),
  the `stepgraph` package under `python/`, and the graph project under `project/`: the folder of
  the langgraph.json (its config as `project/langgraph.json`) with its `dependencies` installed;
- `api` (ApiFunction): its handler folder and what the `api` extra adds to the layer, found by
  resolving both sets, so nothing the layer holds is packaged twice;
- `function` (every other function): its handler folder.

Dependencies are installed by uv (`uv pip`), binary wheels only: `--target lambda` for Lambda's
Python on arm64 (template.yaml's Globals), `--target host` for the Python running this script,
so the suite can import the artifacts here. Standard library otherwise: any Python 3.11+.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"

# Lambda's interpreter, as template.yaml's Globals say (Runtime: python3.12, Architectures: arm64);
# python3.12 runs on Amazon Linux 2023 (glibc 2.34).
LAMBDA_PYTHON = "3.12"
LAMBDA_PLATFORM = "aarch64-manylinux_2_34"
# The limit Lambda puts on a function and its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT = 262_144_000

# Not part of a deployed project: environments, caches, version control, earlier builds.
_NOT_PACKAGED = (
    ".venv",
    "venv",
    ".git",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".aws-sam",
    "node_modules",
    ".*_cache",
    ".hypothesis",
)


def canonical(name: str) -> str:
    """A distribution name as installers compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extra: str | None = None) -> list[str]:
    """pyproject.toml's core dependencies, or one extra's (`stepgraph[x]` in it expanded)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    listed: list[str] = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    out: list[str] = []
    for requirement in listed:
        itself = re.fullmatch(r"\s*stepgraph\s*\[([^]]*)\]\s*", requirement)
        if itself is None:
            out.append(requirement)
        else:
            out += [r for name in itself.group(1).split(",") for r in requirements(name.strip())]
    return out


def uv() -> str:
    """The uv binary: the one installed with this Python (the `uv` package), else uv on PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]  # absent: the PATH's
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            raise SystemExit("sam build installs the layer's dependencies with uv: pip install uv") from None
        return found
    return str(find_uv_bin())


@dataclass
class Project:
    """A langgraph.json and what its `dependencies` ask for: package names are requirements;
    paths are folders (a package with pyproject.toml or setup.py is built and installed, a
    requirements.txt is installed from; any other folder must be inside the project, which is
    copied whole)."""

    config: Path
    requirements: list[str] = field(default_factory=list)
    packages: list[Path] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.config.parent

    @classmethod
    def load(cls, config: Path) -> Project:
        config = (config if config.is_absolute() else ROOT / config).resolve()  # relative: to the repository
        project = cls(config)
        for dependency in json.loads(config.read_text()).get("dependencies") or []:
            if not (dependency.startswith(".") or dependency.startswith("/")):
                project.requirements.append(dependency)
                continue
            path = (project.folder / dependency).resolve()
            if not path.is_dir():
                raise SystemExit(f"{config}: dependency {dependency!r} is not a folder")
            if (path / "pyproject.toml").is_file() or (path / "setup.py").is_file():
                project.packages.append(path)
            elif (path / "requirements.txt").is_file():
                project.requirements.append(f"-r {path / 'requirements.txt'}")
            elif not path.is_relative_to(project.folder):
                raise SystemExit(
                    f"{config}: dependency {dependency!r} is outside {project.folder} and is no package "
                    "(no pyproject.toml, setup.py or requirements.txt): it would not be in the layer"
                )
        return project


@dataclass
class Installer:
    """`uv pip` for one target, binary wheels only (what cannot install on Lambda fails here too)."""

    target: str  # "lambda" or "host"
    scratch: Path

    def _target(self) -> list[str]:
        # uv runs this interpreter (for builds, and as the host target); it never fetches another.
        options = ["--python", sys.executable, "--no-python-downloads", "--only-binary", ":all:"]
        if self.target == "lambda":
            options += ["--python-platform", LAMBDA_PLATFORM, "--python-version", LAMBDA_PYTHON]
        return options

    def _file(self, lines: list[str]) -> str:
        """A requirements file of `lines` (requirements, `-r` includes, wheel paths)."""
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=self.scratch, delete=False) as file:
            file.write("\n".join(lines) + "\n")
        return file.name

    def install(self, destination: Path, lines: list[str], *, deps: bool = True) -> None:
        options = [] if deps else ["--no-deps"]
        # Copies, not links into uv's cache: the artifacts are a deliverable of their own.
        command = [uv(), "pip", "install", "--quiet", "--link-mode", "copy", *self._target(), *options]
        command += ["--target", str(destination)]
        subprocess.run([*command, "-r", self._file(lines)], check=True)

    def resolve(self, lines: list[str]) -> dict[str, str]:
        """What installing `lines` would install: canonical name -> its pinned requirement."""
        command = [uv(), "pip", "compile", "--quiet", "--no-header", "--no-annotate", *self._target()]
        pinned = subprocess.run([*command, self._file(lines)], check=True, capture_output=True, text=True).stdout
        pins = [line.strip() for line in pinned.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        return {canonical(re.split(r"\s*(?:==|@)\s*", pin, maxsplit=1)[0]): pin for pin in pins}

    def wheels(self, project: Project) -> list[str]:
        """The project's own packages, built (pure Python, or they would not run on Lambda)."""
        out = self.scratch / "wheels"
        for n, package in enumerate(project.packages):
            copy = self.scratch / f"package-{n}" / package.name  # setuptools writes into the tree it builds
            _copy_tree(package, copy)
            build = [uv(), "build", "--quiet", "--python", sys.executable, "--no-python-downloads", "--wheel"]
            subprocess.run([*build, "--out-dir", str(out), str(copy)], check=True)
        built = [str(wheel) for wheel in sorted(out.glob("*.whl"))] if project.packages else []
        native = [wheel for wheel in built if not wheel.endswith("-none-any.whl")]
        if native and self.target == "lambda":
            raise SystemExit(f"built for this machine, not for Lambda: {native}")
        return built


@contextmanager
def _installer(target: str) -> Iterator[Installer]:
    with tempfile.TemporaryDirectory(prefix="stepgraph-build-") as scratch:
        yield Installer(target, Path(scratch))


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(*_NOT_PACKAGED), dirs_exist_ok=True)


def _strip(folder: Path) -> None:
    """Console scripts name the build's interpreter, bytecode its version: useless on Lambda."""
    shutil.rmtree(folder / "bin", ignore_errors=True)
    for cache in list(folder.rglob("__pycache__")):
        shutil.rmtree(cache)


def build_layer(package: Path, artifacts: Path, project: Project, target: str) -> None:
    python = artifacts / "python"
    with _installer(target) as installer:
        # The OTLP exporter too: whether spans go to the ADOT collector layer is a deploy-time choice.
        core = [*requirements(), *requirements("otlp")]
        installer.install(python, [*core, *project.requirements, *installer.wheels(project)])
    _strip(python)
    _copy_tree(package, python / "stepgraph")
    # Its version for importlib.metadata (the API reports it), as an installed distribution has.
    version = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    info = python / f"stepgraph-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: stepgraph\nVersion: {version}\n")
    _copy_tree(project.folder, artifacts / "project")
    # template.yaml's LangGraphConfig default: /opt/project/langgraph.json, whatever the file's name.
    if project.config.name != "langgraph.json":
        shutil.copyfile(project.config, artifacts / "project" / "langgraph.json")


def build_api(source: Path, artifacts: Path, project: Project, target: str) -> None:
    """The API function adds to the layer what core + project + the `api` extra would install and
    core + project alone would not (or not in that version)."""
    with _installer(target) as installer:
        layer = [*requirements(), *requirements("otlp"), *project.requirements, *installer.wheels(project)]
        in_layer, with_api = installer.resolve(layer), installer.resolve([*layer, *requirements("api")])
        additions = [pin for name, pin in sorted(with_api.items()) if in_layer.get(name) != pin]
        installer.install(artifacts, additions, deps=False)
    _strip(artifacts)
    build_function(source, artifacts)


def build_function(source: Path, artifacts: Path) -> None:
    _copy_tree(source, artifacts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build one artifact of template.yaml (see infra/sam/Makefile)")
    parser.add_argument("--target", choices=["lambda", "host"], default="lambda")
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "langgraph.json", help="langgraph.json")
    parser.add_argument("artifact", choices=["layer", "api", "function"])
    parser.add_argument("source", type=Path, help="the resource's CodeUri (SAM's copy of it)")
    parser.add_argument("artifacts", type=Path, help="ARTIFACTS_DIR")
    args = parser.parse_args(argv)
    if args.artifact == "function":
        build_function(args.source, args.artifacts)
    elif args.artifact == "layer":
        build_layer(args.source, args.artifacts, Project.load(args.config), args.target)
    else:
        build_api(args.source, args.artifacts, Project.load(args.config), args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
