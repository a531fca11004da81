"""What `sam build` makes of a langgraph.json's `dependencies` (infra/sam/artifacts.py): decided
before anything is installed, so a project that could not run on Lambda fails the build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sam_artifacts import artifacts

ROOT = Path(__file__).resolve().parents[2]


def _project(folder: Path, dependencies: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "langgraph.json"
    config.write_text(json.dumps({"dependencies": dependencies, "graphs": {"g": "./g.py:graph"}}))
    return config


def test_names_are_installed_packages_built_and_requirement_files_read(tmp_path: Path) -> None:
    (tmp_path / "app" / "lib").mkdir(parents=True)
    (tmp_path / "app" / "lib" / "pyproject.toml").write_text("[project]\nname = 'lib'\nversion = '1'\n")
    (tmp_path / "app" / "reqs").mkdir()
    (tmp_path / "app" / "reqs" / "requirements.txt").write_text("httpx\n")
    (tmp_path / "app" / "plain").mkdir()
    config = _project(tmp_path / "app", ["langchain-openai>=0.3", "./lib", "./reqs", "./plain", "."])
    project = artifacts.Project.load(config)
    assert project.requirements == ["langchain-openai>=0.3", f"-r {tmp_path / 'app' / 'reqs' / 'requirements.txt'}"]
    assert project.packages == [tmp_path / "app" / "lib"]  # ./plain and . travel with the project's copy


def test_a_plain_folder_outside_the_project_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    config = _project(tmp_path / "app", ["../shared"])
    with pytest.raises(SystemExit, match=r"outside .* and is no package"):
        artifacts.Project.load(config)


def test_a_relative_config_is_the_repositorys_and_the_examples_need_no_install() -> None:
    project = artifacts.Project.load(Path("examples/langgraph.json"))
    assert project.config == ROOT / "examples" / "langgraph.json"
    assert (project.requirements, project.packages) == ([], [])


def test_the_api_extra_and_the_core_are_read_from_pyproject() -> None:
    core, api = artifacts.requirements(), artifacts.requirements("api")
    assert any(r.startswith("langgraph>") for r in core) and not any(r.startswith("fastapi") for r in core)
    assert any(r.startswith("fastapi") for r in api) and any(r.startswith("uvicorn") for r in api)
