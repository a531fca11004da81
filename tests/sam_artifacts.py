"""infra/sam/artifacts.py, which `sam build` runs as a script, loaded once for the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "stepgraph_sam_artifacts", Path(__file__).resolve().parents[1] / "infra" / "sam" / "artifacts.py"
)
assert _spec is not None and _spec.loader is not None
artifacts = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = artifacts  # dataclasses look their module up while it executes
_spec.loader.exec_module(artifacts)
