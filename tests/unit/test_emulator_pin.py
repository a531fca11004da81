"""moto's version is stated once: the emulator's `MOTO_VERSION` is where pyproject.toml's range starts."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import moto
import pytest
from stepgraph_local import emulator
from stepgraph_local.emulator import MOTO_VERSION, require_moto

ROOT = Path(__file__).resolve().parents[2]


def test_local_extra_ranges_moto_from_the_version_the_emulator_is_written_against() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    major, minor, _ = MOTO_VERSION.split(".")
    ranges = [m.group(1) for d in extras["local"] if (m := re.fullmatch(r"moto(?:\[[^\]]*\])?\s*(\S+)", d))]
    assert ranges == [f">={MOTO_VERSION},<{major}.{int(minor) + 1}"], extras["local"]
    assert importlib.metadata.version("moto") == MOTO_VERSION  # and the environment has it


@pytest.mark.parametrize("version", ["5.3.0", "5.2.4", "6.0.0"])
def test_a_moto_outside_the_range_is_refused_by_name(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", version)
    with pytest.raises(RuntimeError, match=rf"moto {version} is installed"):
        require_moto("install")


def test_a_later_patch_release_runs_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(moto, "__version__", "5.2.9")
    monkeypatch.setattr(emulator, "_warned", set())
    require_moto("install")
    assert "running on moto 5.2.9" in caplog.text
