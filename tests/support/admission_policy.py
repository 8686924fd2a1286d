"""ValidatingAdmissionPolicies evaluated with cel-python (``celpy``), for tests: no API server runs on this machine.

:class:`Policies` reads deploy/kubernetes/admission-policy.yaml and decides a request as a
Kubernetes API server would: a policy applies when a binding names it (validationActions
Deny) and one of its ``matchConstraints.resourceRules`` matches the request's group,
version, resource (``deployments/scale`` is a subresource, which ``deployments`` does not
match) and operation; then every ``matchCondition`` must be true, the ``variables`` are
evaluated in order, and each validation that is false or fails to evaluate denies the
request (``failurePolicy: Fail``). The answer is the list of denials, worded as a real server
words them (``ValidatingAdmissionPolicy 'x' with binding 'x' denied request: ...``).

What this does not test, so what a real cluster must still show:

* cel-go's compilation and type checking of the expressions against the OpenAPI schemas of
  the matched kinds (celpy parses and evaluates dynamically; a type error a real server
  reports in the policy's status goes unseen here);
* differences between celpy and cel-go and Kubernetes' CEL libraries (this policy uses only
  standard CEL: has, all, map, in, size, startsWith, string, ternaries), such as error
  propagation through ``&&`` / ``||`` and equality of absent versus empty fields;
* the admission chain itself: defaulting and mutating admission before validation, the
  Scale object of the scale subresource, the user name a real authenticator puts in
  ``request.userInfo`` (here the caller says who asks), and variables evaluated lazily
  (here eagerly, which can only deny more).

Features the policy file does not use raise NotImplementedError here (paramKind,
messageExpression, auditAnnotations, a binding's matchResources or paramRef, match
policies other than Equivalent), so this harness grows with it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import celpy
import yaml

from tests.support.paths import ROOT

POLICY_FILE = ROOT / "deploy" / "kubernetes" / "admission-policy.yaml"
RUNNER = "system:serviceaccount:mlchaos:mlchaos"  # the ServiceAccount of deploy/kubernetes/rbac.yaml
VERSIONS = {"": "v1", "apps": "v1", "networking.k8s.io": "v1", "monitoring.coreos.com": "v1"}
KINDS = {"pods": "Pod", "services": "Service", "secrets": "Secret", "deployments": "Deployment",
         "statefulsets": "StatefulSet", "networkpolicies": "NetworkPolicy", "prometheusrules": "PrometheusRule"}
UNSUPPORTED_SPEC = ("paramKind", "auditAnnotations")


@dataclass(frozen=True)
class Request:
    """One admission request: what a write asks for, by whom, with the object before and after."""

    operation: str  # CREATE, UPDATE, DELETE
    group: str  # "" for the core API
    resource: str  # plural, "deployments/scale" for a subresource
    namespace: str | None
    name: str | None
    object: dict[str, Any] | None  # None for DELETE
    old_object: dict[str, Any] | None  # None for CREATE
    username: str = RUNNER

    def activation(self) -> dict[str, Any]:
        """The CEL variables ``request``, ``object``, ``oldObject`` as a real server binds them."""
        resource, _, subresource = self.resource.partition("/")
        version = VERSIONS.get(self.group, "v1")
        request = {
            "uid": "emulated", "operation": self.operation, "name": self.name or "", "namespace": self.namespace or "",
            "kind": {"group": self.group, "version": version, "kind": KINDS.get(resource, resource)},
            "resource": {"group": self.group, "version": version, "resource": resource},
            "subResource": subresource, "userInfo": {"username": self.username, "groups": []}, "dryRun": False,
        }
        return {"request": celpy.json_to_cel(request), "object": celpy.json_to_cel(self.object),
                "oldObject": celpy.json_to_cel(self.old_object)}


@dataclass
class Policy:
    """One ValidatingAdmissionPolicy, its expressions compiled, and the name of the binding that enables it."""

    name: str
    binding: str
    rules: list[dict[str, Any]]
    conditions: list[tuple[str, Any]] = field(default_factory=list)
    variables: list[tuple[str, str, Any]] = field(default_factory=list)  # (name, expression, program)
    validations: list[tuple[str, str, Any]] = field(default_factory=list)  # (expression, message, program)

    def matches(self, request: Request) -> bool:
        resource, _, subresource = request.resource.partition("/")
        wanted = f"{resource}/{subresource}" if subresource else resource
        for rule in self.rules:
            if (_hit(rule.get("apiGroups"), request.group) and _hit(rule.get("apiVersions"),
                                                                      VERSIONS.get(request.group, "v1"))
                    and _hit(rule.get("resources"), wanted) and _hit(rule.get("operations"), request.operation)):
                return True
        return False

    def denials(self, request: Request) -> list[str]:
        """The validations that deny the request (empty: admitted, or the policy does not apply)."""
        if not self.matches(request):
            return []
        activation = request.activation()
        for expression, program in self.conditions:
            if not _true(program, activation, expression):
                return []
        values: dict[str, Any] = {}
        failed: set[str] = set()  # variables that did not evaluate: every expression that reads one fails
        for name, expression, program in self.variables:
            activation["variables"] = _map(values)
            if any(f"variables.{n}" in expression for n in failed):
                failed.add(name)
                continue
            try:
                values[name] = program.evaluate(activation)
            except celpy.CELEvalError:
                failed.add(name)
        activation["variables"] = _map(values)
        prefix = f"ValidatingAdmissionPolicy '{self.name}' with binding '{self.binding}' denied request: "
        return [prefix + message for expression, message, program in self.validations
                if any(f"variables.{n}" in expression for n in failed) or not _true(program, activation, expression)]


class Policies:
    """Every bound policy of a policy file; :meth:`denials` decides a request, :meth:`admission` an emulator write."""

    def __init__(self, path: Path = POLICY_FILE) -> None:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        bindings = {}
        for binding in (d for d in documents if d["kind"] == "ValidatingAdmissionPolicyBinding"):
            spec = binding["spec"]
            if spec.get("matchResources") or spec.get("paramRef") or spec.get("validationActions") != ["Deny"]:
                raise NotImplementedError(f"binding {binding['metadata']['name']}: only validationActions [Deny], "
                                          "without matchResources or paramRef")
            bindings[spec["policyName"]] = binding["metadata"]["name"]
        env = celpy.Environment()
        self.policies: list[Policy] = []
        for document in (d for d in documents if d["kind"] == "ValidatingAdmissionPolicy"):
            spec = document["spec"]
            name = document["metadata"]["name"]
            unsupported = [key for key in UNSUPPORTED_SPEC if key in spec]
            unsupported += [f"validations[{i}].messageExpression" for i, v in enumerate(spec.get("validations") or [])
                            if "messageExpression" in v]
            if unsupported or spec.get("failurePolicy") != "Fail" \
                    or spec["matchConstraints"].get("matchPolicy", "Equivalent") != "Equivalent":
                raise NotImplementedError(f"policy {name}: {', '.join(unsupported) or 'failurePolicy / matchPolicy'}")
            if name not in bindings:
                continue  # a policy without a binding does nothing
            policy = Policy(name, bindings[name], spec["matchConstraints"]["resourceRules"])
            policy.conditions = [(c["expression"], _compile(env, c["expression"])) for c in spec.get("matchConditions")
                                 or []]
            policy.variables = [(v["name"], v["expression"], _compile(env, v["expression"]))
                                for v in spec.get("variables") or []]
            policy.validations = [(v["expression"], v["message"], _compile(env, v["expression"]))
                                  for v in spec["validations"]]
            self.policies.append(policy)

    def expressions(self) -> list[str]:
        """Every CEL expression of every policy (conditions, variables, validations)."""
        found = [e for p in self.policies for e, _ in p.conditions]
        found += [e for p in self.policies for _, e, _ in p.variables]
        return found + [e for p in self.policies for e, _, _ in p.validations]

    def denials(self, request: Request) -> list[str]:
        """Why the request is denied (empty: admitted)."""
        return [d for policy in self.policies for d in policy.denials(request)]

    def matched_by(self, group: str, resource: str, operation: str) -> list[str]:
        """The policies that hold a request of the runner (whatever its content) for this resource and operation."""
        request = Request(operation, group, resource, "ns", "name", None, None)
        return [p.name for p in self.policies if p.matches(request)]

    def admission(self, username: str = RUNNER) -> Any:
        """An admission hook for the API emulator: every write is made by ``username``."""

        def decide(operation: str, group: str, resource: str, namespace: str | None, name: str | None,
                   new: dict[str, Any] | None, old: dict[str, Any] | None) -> list[str]:
            return self.denials(Request(operation, group, resource, namespace, name, copy.deepcopy(new),
                                        copy.deepcopy(old), username))

        return decide


def _hit(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)


def _compile(env: celpy.Environment, expression: str) -> Any:
    return env.program(env.compile(expression))


def _map(values: dict[str, Any]) -> Any:
    return celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in values.items()})


def _true(program: Any, activation: dict[str, Any], expression: str) -> bool:
    """True only when the expression evaluates to the boolean true (false, an error or a non-boolean deny)."""
    try:
        result = program.evaluate(activation)
    except celpy.CELEvalError:
        return False
    except TypeError as exc:  # celpy raises some evaluation errors untranslated
        raise AssertionError(f"celpy failed on {expression!r}: {exc}") from exc
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)
