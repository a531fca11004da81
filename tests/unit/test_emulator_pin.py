"""moto's version is stated once: the emulator's `MOTO_VERSION` is the version pyproject.toml pins."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from stepgraph_local.emulator import MOTO_VERSION

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_pins_the_moto_the_emulator_is_written_against() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.group(1) for d in dependencies if (m := re.fullmatch(r"moto(?:\[[^\]]*\])?\s*==\s*(\S+)", d))]
    assert pins == [MOTO_VERSION], dependencies
    assert importlib.metadata.version("moto") == MOTO_VERSION  # and the environment has it
