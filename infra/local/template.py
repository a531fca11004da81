"""Reads `template.yaml` as plain data: the single description of the stack that the local
runtime provisions from, so local resources cannot drift from the deployed ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import yaml

__all__ = ["EXAMPLES_CONFIG", "STACK", "TEMPLATE", "load_template"]

# The stack the local runtime provisions: template.yaml, the ASL it names and the handlers it runs,
# plus the example graphs, shipped inside the package (in the repository these are symlinks to
# the files SAM deploys, so there is one copy), so an installed `stepgraph[local]` needs no clone.
STACK = Path(__file__).parent / "stack"
TEMPLATE = STACK / "template.yaml"
EXAMPLES_CONFIG = STACK / "examples" / "langgraph.json"


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that also understands CloudFormation's short-form intrinsic tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:  # YAML has no other kind of node
        value = loader.construct_mapping(cast(yaml.MappingNode, node), deep=True)

    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        # `!GetAtt Resource.Attribute` (the attribute itself may contain dots)
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template; short tags become their long forms
    (`!Ref X` -> `{"Ref": "X"}`, `!GetAtt A.B` -> `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` ->
    `{"Fn::Sub": s}`, ...)."""
    with open(path, encoding="utf-8") as f:
        template: dict[str, Any] = yaml.load(f, Loader=_TemplateLoader)
    return template
