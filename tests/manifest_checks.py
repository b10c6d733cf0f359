"""Offline checks of Kubernetes manifests, for every manifest of the project.

- `kubernetes_problems`: the strict JSON schema of a core Kubernetes kind (kubernetes-validate),
  catching wrong types, missing required fields and unknown fields.
- `pod_spec_problems`: the same for a pod spec embedded in a custom resource (an
  InferenceService predictor, a PyTorchJob replica template), checked as a Pod's spec.
- `roundtrip_problems`: a custom resource against its SDK model (kserve's V1beta1*): no CRD
  schema ships with the SDK, and deserialising only catches missing required fields, so every
  field the model does not know, or holds with another type, shows as a difference between the
  input and its re-serialised form.
- `security_problems`, `probe_problems`, `resource_problems`: the policy every pod of the project
  follows (non-root, no privilege escalation, probes on real ports, requests and limits).
- `dockerfile_instructions`: a Dockerfile as (instruction, argument) pairs, continuations joined.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

KUBERNETES_VERSION = "1.33"


def load_documents(path: str | Path) -> list[dict]:
    """Every YAML document of a manifest file (anchors and aliases resolved)."""
    return [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc is not None]


def kubernetes_problems(obj: dict, *, version: str = KUBERNETES_VERSION) -> list[str]:
    """The first strict-schema violation of a core Kubernetes object, as ['<json path>: <message>'], or []."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(copy.deepcopy(obj), version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{error.json_path}: {error.message}"]
    return []


def pod_spec_problems(pod_spec: dict, *, version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict-schema problems of a pod spec embedded in another resource, checked as a Pod's spec."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "embedded"}, "spec": pod_spec}
    return [problem.replace("$.spec", "$", 1) for problem in kubernetes_problems(pod, version=version)]


def pod_template_problems(template: dict, *, version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict-schema problems of a PodTemplateSpec ({metadata, spec}) embedded in another resource."""
    holder = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "embedded"}, "template": template}
    return [problem.replace("$.template", "$", 1) for problem in kubernetes_problems(holder, version=version)]


def embedded_pod_spec(component: dict) -> dict:
    """The pod-spec fields of a component that inlines a PodSpec (a KServe predictor): the rest
    (replicas, scaling, timeouts) belongs to the custom resource and is checked by `roundtrip_problems`."""
    import kubernetes.client

    pod_fields = set(kubernetes.client.V1PodSpec.attribute_map.values())
    return {key: value for key, value in component.items() if key in pod_fields}


def differences(original: object, roundtrip: object, path: str = "$") -> list[str]:
    """Paths where `roundtrip` lost a field of `original` or holds another value there."""
    if isinstance(original, dict) and isinstance(roundtrip, dict):
        found = []
        for key, value in original.items():
            if key not in roundtrip:
                found.append(f"{path}.{key}: unknown field (dropped by the model)")
            else:
                found += differences(value, roundtrip[key], f"{path}.{key}")
        return found
    if isinstance(original, list) and isinstance(roundtrip, list) and len(original) == len(roundtrip):
        return [
            p
            for i, (a, b) in enumerate(zip(original, roundtrip, strict=True))
            for p in differences(a, b, f"{path}[{i}]")
        ]
    if original != roundtrip or type(original) is not type(roundtrip):
        return [f"{path}: {json.dumps(original)} came back as {json.dumps(roundtrip)}"]
    return []


def roundtrip_problems(obj: dict, model_class: str = "V1beta1InferenceService") -> list[str]:
    """Fields of `obj` that kserve's SDK model `model_class` does not hold as given, and missing required ones."""
    import kserve.models
    import kubernetes.client.models
    from kserve.api_client import ApiClient

    # kserve's models refer to the core V1* models by name but look them up in kserve.models
    for name in dir(kubernetes.client.models):
        if name.startswith("V1") and not hasattr(kserve.models, name):
            setattr(kserve.models, name, getattr(kubernetes.client.models, name))

    class Response:  # ApiClient.deserialize reads the JSON text of an HTTP response
        data = json.dumps(obj)

    client = ApiClient()
    try:
        model = client.deserialize(Response(), model_class)
    except ValueError as error:  # a required field is missing (the generated models check in setters)
        return [f"$: {error}"]
    return differences(obj, client.sanitize_for_serialization(model))


def containers(pod_spec: dict) -> list[dict]:
    return list(pod_spec.get("containers", [])) + list(pod_spec.get("initContainers", []))


def security_problems(pod_spec: dict, *, where: str = "$") -> list[str]:
    """Non-root (pod or every container), no privilege escalation, all capabilities dropped."""
    problems = []
    pod_security = pod_spec.get("securityContext", {})
    for i, container in enumerate(containers(pod_spec)):
        at = f"{where}.containers[{i}] ({container.get('name')})"
        security = container.get("securityContext", {})
        if not security.get("runAsNonRoot", pod_security.get("runAsNonRoot", False)):
            problems.append(f"{at}: runAsNonRoot is not true (pod or container securityContext)")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            problems.append(f"{at}: runs as UID 0")
        if security.get("allowPrivilegeEscalation", True):
            problems.append(f"{at}: allowPrivilegeEscalation is not false")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problems.append(f"{at}: capabilities do not drop ALL")
    return problems


def probe_problems(container: dict, *, probes: tuple[str, ...] = ("readinessProbe", "livenessProbe")) -> list[str]:
    """Each named probe exists, and an HTTP probe targets a port the container declares."""
    ports = {p["containerPort"] for p in container.get("ports", [])} | {
        p.get("name") for p in container.get("ports", [])
    }
    problems = []
    for name in probes:
        probe = container.get(name)
        if probe is None:
            problems.append(f"{container.get('name')}: no {name}")
        elif "httpGet" in probe and probe["httpGet"].get("port") not in ports:
            problems.append(f"{container.get('name')}.{name}: port {probe['httpGet'].get('port')} is not declared")
    return problems


def resource_problems(container: dict, *, needed: tuple[str, ...] = ("cpu", "memory")) -> list[str]:
    """Requests for `needed` and a memory limit, so the scheduler can place the pod and the kernel bound it."""
    resources = container.get("resources", {})
    problems = [f"{container.get('name')}: no {r} request" for r in needed if r not in resources.get("requests", {})]
    if "memory" not in resources.get("limits", {}):
        problems.append(f"{container.get('name')}: no memory limit")
    return problems


def dockerfile_instructions(path: str | Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, with line continuations joined and comments dropped."""
    instructions, pending = [], ""
    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = f"{pending} {stripped[:-1].strip()}" if stripped.endswith("\\") else f"{pending} {stripped}"
        if not stripped.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
    return instructions
