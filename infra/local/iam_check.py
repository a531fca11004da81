"""The IAM check: every AWS call the local runtime recorded (`iam`) must be allowed by its
principal's policies in template.yaml, on the resource it touched; the permissions no call used
are listed, so the policies can say exactly what the code does.

template.yaml is transformed to CloudFormation by aws-sam-translator, as `sam deploy` does,
which expands SAM's policy templates into the statements of each function's and each state
machine's generated role. The statements are resolved against the local stack (the physical
names and ARNs `LocalAWS.resolve` gives), and a call is allowed when an Allow statement matches
its action (case-insensitively) and its resource (IAM's `*` and `?` wildcards), and no Deny
statement does. A statement with a Condition, NotAction or NotResource is refused rather than
half-read. AWS managed policies that SAM attaches (logs, X-Ray, an SQS event source's polling)
serve the Lambda service, not stepgraph's code: they are named in the report, not evaluated.
"""

from __future__ import annotations

import copy
import functools
import re
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .iam import TOKEN_ACTIONS, Call

__all__ = ["Grant", "Report", "check", "grants", "transform"]

Resolve = Callable[[Any], Any]
_PRINCIPAL_TYPES = ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine")
_ROLE_KEYS = ("Role", "RoleArn")


@dataclass(frozen=True)
class Grant:
    """One action pattern on one resource pattern, from one statement of a principal's role."""

    principal: str
    effect: str
    action: str
    resource: str
    source: str  # the role and policy it comes from

    def matches(self, call: Call) -> bool:
        return _pattern(self.action, True).fullmatch(call.action) is not None and (
            _pattern(self.resource, False).fullmatch(call.resource) is not None
        )

    def __str__(self) -> str:
        return f"{self.principal}: {self.action} on {self.resource} ({self.source})"


@dataclass
class Report:
    denied: list[Call] = field(default_factory=list)
    unused: list[Grant] = field(default_factory=list)
    # Allow grants on `*` for an action that takes a resource: the ARN could be named.
    unnamed: list[Grant] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)  # principals with a role that made no call
    managed: dict[str, list[str]] = field(default_factory=dict)  # principal -> AWS managed policy ARNs

    def denials(self) -> str:
        return "\n".join(
            f"{c.principal}: {c.action} on {c.resource} is not allowed by template.yaml" for c in self.denied
        )

    def lines(self) -> list[str]:
        """What an operator reads: the unused permissions, then what was not evaluated."""
        out = [f"permissions no call used ({len(self.unused)}):"]
        out += [f"  {g}" for g in self.unused] or ["  none"]
        if self.unnamed:
            out.append("grants on Resource * for actions that name a resource:")
            out += [f"  {g}" for g in self.unnamed]
        if self.idle:
            out.append(f"principals that made no call: {', '.join(self.idle)}")
        managed = sorted({arn for arns in self.managed.values() for arn in arns})
        if managed:
            out.append(f"AWS managed policies, not evaluated: {', '.join(a.rsplit('/', 1)[-1] for a in managed)}")
        return out


def check(calls: Iterable[Call], template: dict[str, Any], resolve: Resolve, *, region: str) -> Report:
    """Hold `calls` against the policies of `template` (a SAM template as `load_template` reads
    it), with its values resolved by `resolve`."""
    by_principal, managed = grants(transform(template, region=region), resolve)
    calls = sorted(set(calls))
    report = Report(managed=managed)
    used: set[Grant] = set()
    for call in calls:
        own = by_principal.get(call.principal, [])
        matching = [g for g in own if g.matches(call)]
        used.update(matching)
        if any(g.effect == "Deny" for g in matching) or not any(g.effect == "Allow" for g in matching):
            report.denied.append(call)
    callers = {c.principal for c in calls}
    for principal, own in sorted(by_principal.items()):
        if principal not in callers:
            report.idle.append(principal)
        for grant in own:
            if grant.effect != "Allow":
                continue
            if grant not in used:
                report.unused.append(grant)
            if grant.resource == "*" and grant.action.lower() not in {a.lower() for a in TOKEN_ACTIONS}:
                report.unnamed.append(grant)
    return report


# ---------------------------------------------------------------- the transformed template
def transform(template: dict[str, Any], *, region: str) -> dict[str, Any]:
    """SAM to CloudFormation, as `sam deploy` does (local code paths stand in as S3 locations:
    the translator reads no code, and policies do not depend on it)."""
    from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
    from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

    sam = copy.deepcopy(template)
    for resource in (sam.get("Resources") or {}).values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = "s3://local/" + props[key]
    # Only the region is read from the session (the AWS::Region pseudo parameter).
    translator = Translator(None, Parser(), boto_session=types.SimpleNamespace(region_name=region))
    transformed: dict[str, Any] = translator.translate(sam, {}, get_managed_policy_map=lambda: {})
    return transformed


def grants(cfn: dict[str, Any], resolve: Resolve) -> tuple[dict[str, list[Grant]], dict[str, list[str]]]:
    """Each principal's grants (its role's statements, resolved), and the AWS managed policy
    ARNs its role has. A principal is any resource that runs under a role of the template."""
    resources: dict[str, Any] = cfn.get("Resources") or {}
    roles = {name for name, r in resources.items() if r.get("Type") == "AWS::IAM::Role"}
    by_principal: dict[str, list[Grant]] = {}
    managed: dict[str, list[str]] = {}
    for principal, resource in resources.items():
        role = _role_of(resource.get("Properties") or {}, roles)
        if role is None:
            if resource.get("Type") in _PRINCIPAL_TYPES:
                raise ValueError(f"{principal}: its role is not one of the template's, so its policies are unknown")
            continue
        documents, arns = _policies(role, resources)
        managed[principal] = arns
        by_principal[principal] = [
            grant for source, document in documents for grant in _grants(principal, source, document, resolve)
        ]
    return by_principal, managed


def _role_of(props: dict[str, Any], roles: set[str]) -> str | None:
    for key, value in _walk(props):
        if key in _ROLE_KEYS and isinstance(value, dict):
            target = value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0]
            if target in roles:
                return str(target)
    return None


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _policies(role: str, resources: dict[str, Any]) -> tuple[list[tuple[str, Any]], list[str]]:
    """The role's policy documents (inline, attached policy resources, customer managed policies
    of the template) and the ARNs of the AWS managed ones."""
    props = resources[role].get("Properties") or {}
    documents = [(f"{role}/{p.get('PolicyName', '?')}", p["PolicyDocument"]) for p in props.get("Policies") or []]
    aws_managed = []
    for arn in props.get("ManagedPolicyArns") or []:
        if isinstance(arn, dict) and arn.get("Ref") in resources:
            documents.append((arn["Ref"], resources[arn["Ref"]]["Properties"]["PolicyDocument"]))
        else:
            aws_managed.append(arn if isinstance(arn, str) else str(arn))
    for name, resource in resources.items():
        if resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
            attached = resource["Properties"].get("Roles") or [resource["Properties"].get("RoleName")]
            if {"Ref": role} in attached:
                documents.append((name, resource["Properties"]["PolicyDocument"]))
    return documents, aws_managed


def _grants(principal: str, source: str, document: Any, resolve: Resolve) -> Iterator[Grant]:
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        unsupported = {"Condition", "NotAction", "NotResource", "NotPrincipal"} & set(statement)
        if unsupported:
            raise ValueError(f"{source}: the IAM check does not evaluate {sorted(unsupported)}: {statement}")
        actions, resources = statement["Action"], statement["Resource"]
        for action in actions if isinstance(actions, list) else [actions]:
            for resource in resources if isinstance(resources, list) else [resources]:
                value = resolve(resource)
                if not isinstance(value, str):
                    raise ValueError(f"{source}: resource {resource!r} resolves to {value!r}, not an ARN")
                yield Grant(principal, statement["Effect"], action, _any_secret_suffix(value), source)


# A secret's ARN ends in `-` and six random characters, drawn anew by each stack (each emulated
# one too, so a check's stack never has the suffixes its calls were recorded with): the secret
# the template names is the one of that name, whatever its suffix (AWS's own advice for policies).
_SECRET_ARN = re.compile(r"(arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:.+-)[A-Za-z0-9]{6}")


def _any_secret_suffix(resource: str) -> str:
    return _SECRET_ARN.sub(r"\1??????", resource) if _SECRET_ARN.fullmatch(resource) else resource


@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: `*` any run of characters, `?` any one."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(regex, re.IGNORECASE if ignore_case else 0)
