"""The serving manifests, checked offline: the InferenceService against kserve's SDK models and the
strict Kubernetes pod schema, the pod policy, the container recipe, and the example requests
against the server's own request parsers."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import pytest
from manifest_checks import (
    differences,
    dockerfile_instructions,
    embedded_pod_spec,
    load_documents,
    pod_spec_problems,
    probe_problems,
    resource_problems,
    roundtrip_problems,
    security_problems,
)

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"


@pytest.fixture(scope="module")
def isvc() -> dict:
    (document,) = load_documents(MANIFESTS / "inferenceservice.yaml")
    return document


@pytest.fixture(scope="module")
def container(isvc) -> dict:
    (container,) = isvc["spec"]["predictor"]["containers"]
    return container


def expand(args: list[str], env: list[dict]) -> list[str]:
    """Kubernetes' $(VAR) expansion of container args from the container's literal env values."""
    values = {e["name"]: e["value"] for e in env if "value" in e}
    return [re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), arg) for arg in args]


def test_inference_service_matches_the_kserve_sdk_model(isvc):
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    assert roundtrip_problems(isvc) == []
    # Knative (Serverless mode) allows one container port; REST and gRPC need the Standard mode
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"


def test_predictor_pod_spec_passes_the_strict_kubernetes_schema(isvc):
    assert pod_spec_problems(embedded_pod_spec(isvc["spec"]["predictor"])) == []


def test_pod_runs_as_non_root_with_probes_and_resources(isvc, container):
    predictor = isvc["spec"]["predictor"]
    assert security_problems(predictor) == []
    assert predictor["securityContext"]["runAsUser"] != 0
    assert probe_problems(container) == []
    assert resource_problems(container) == []
    assert container["name"] == "kserve-container"  # the name KServe expects of a custom predictor


def test_container_args_are_a_valid_serve_config_and_match_the_probes(container):
    from components.serve.__main__ import parse_arguments
    from components.serve.loading import parse_registry_uri

    config, _ = parse_arguments(expand(container["args"], container["env"]))
    assert parse_registry_uri(config.model_uri).alias == "champion"
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v2/models/{config.model_name}/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {container["readinessProbe"]["httpGet"]["port"], container["livenessProbe"]["httpGet"]["port"]} == {
        config.http_port
    }
    # REST first (the Service's port 80, which the deploy step calls), then gRPC
    assert config.enable_grpc
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("http1", config.http_port),
        ("h2c", config.grpc_port),
    ]
    env = {e["name"]: e for e in container["env"]}
    assert "configMapKeyRef" in env["MLFLOW_TRACKING_URI"]["valueFrom"]  # the tracking server is configuration


def test_dockerfile_installs_the_lock_and_serves_as_the_manifest_user(isvc, container):
    from components.serve.__main__ import parse_arguments

    instructions = dockerfile_instructions(MANIFESTS / "serving.Dockerfile")
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11")
    assert ("RUN", "pip install --no-deps -r requirements.lock") in instructions
    for keyword, arguments in instructions:
        if keyword == "COPY":
            *sources, _ = shlex.split(arguments)
            assert all((REPO / source).exists() for source in sources), f"COPY of a missing path: {arguments}"
    user = dict(instructions)["USER"].split(":")[0]
    assert user.isdigit() and int(user) == isvc["spec"]["predictor"]["securityContext"]["runAsUser"]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")  # installs run as root
    assert json.loads(dict(instructions)["ENTRYPOINT"]) == ["python", "-m", "components.serve"]
    exposed = [int(port) for port in dict(instructions)["EXPOSE"].split()]
    assert exposed == [p["containerPort"] for p in container["ports"]]
    default, _ = parse_arguments(json.loads(dict(instructions)["CMD"]))
    assert [default.http_port, default.grpc_port] == exposed


@pytest.mark.parametrize("name", ["example-request-v1.json", "example-request-v2.json"])
def test_example_requests_pass_the_server_parsers(name):
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    from components.serve.config import ServeConfig
    from components.serve.protocol import RequestLimits, check_v2_envelope, offered_sizes, parse_v1, parse_v2

    defaults = ServeConfig()
    limits = RequestLimits(
        max_prompts=defaults.max_prompts,
        max_images_per_prompt=defaults.max_images_per_prompt,
        max_images_per_request=defaults.max_images_per_request,
        max_prompt_chars=defaults.max_prompt_chars,
        sizes=offered_sizes(64),
    )
    body = json.loads((MANIFESTS / name).read_text())
    if "v2" in name:
        check_v2_envelope(body)
        request = parse_v2(InferRequest.from_inference_request(InferenceRequest(**body), "xmcgan"), limits)
    else:
        request = parse_v1(body, limits)
    assert request.image_count == 4 and request.seed == 42


# The checks themselves must be able to fail.


def test_checks_catch_unknown_and_mistyped_fields(isvc):
    broken = copy.deepcopy(isvc)
    broken["spec"]["predictor"]["minReplica"] = 1  # a typo of minReplicas
    broken["spec"]["predictor"]["maxReplicas"] = "3"  # a string where the model holds an integer
    problems = roundtrip_problems(broken)
    assert any("minReplica:" in p for p in problems)
    assert any("maxReplicas" in p for p in problems)
    broken_pod = embedded_pod_spec(broken["spec"]["predictor"])
    broken_pod["containers"][0]["resources"]["limit"] = {"memory": "1Gi"}  # not "limits"
    assert any("limit" in p for p in pod_spec_problems(broken_pod))


def test_checks_catch_missing_required_fields(isvc):
    broken = copy.deepcopy(isvc)
    del broken["spec"]["predictor"]["containers"][0]["name"]
    assert roundtrip_problems(broken) != []
    assert pod_spec_problems(embedded_pod_spec(broken["spec"]["predictor"])) != []


def test_checks_catch_root_pods_and_missing_probes(isvc):
    pod = copy.deepcopy(embedded_pod_spec(isvc["spec"]["predictor"]))
    del pod["securityContext"]["runAsNonRoot"], pod["containers"][0]["securityContext"]["runAsNonRoot"]
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert len(security_problems(pod)) == 2
    del pod["containers"][0]["livenessProbe"]
    pod["containers"][0]["readinessProbe"]["httpGet"]["port"] = 9090
    assert len(probe_problems(pod["containers"][0])) == 2


def test_differences_reports_dropped_and_changed_values():
    assert differences({"a": 1, "b": {"c": "1"}}, {"a": 1, "b": {"c": 1}}) == ['$.b.c: "1" came back as 1']
    assert differences({"a": [{"x": 1}]}, {"a": [{}]}) == ["$.a[0].x: unknown field (dropped by the model)"]
