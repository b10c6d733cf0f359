"""The cluster manifests of the pipeline side, checked offline: multi-node training, RBAC of the
deploy step, the shared ConfigMap, the component image, the recurring run; and the deploy step's
requests to the Kubernetes API (the API patched)."""

import re
from pathlib import Path

import pytest
from manifest_checks import (
    dockerfile_instructions,
    kubernetes_problems,
    load_documents,
    pod_template_problems,
    resource_problems,
    roundtrip_problems,
    security_problems,
)

from components.deploy import deploy_kserve, inference_service
from components.train.__main__ import parse_arguments
from pipelines.xmcgan_pipeline import check_parameters

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"


def test_core_kubernetes_objects_pass_the_strict_schema():
    documents = load_documents(MANIFESTS / "rbac-deploy.yaml") + load_documents(MANIFESTS / "configmap.yaml")
    assert [d["kind"] for d in documents] == ["ServiceAccount", "Role", "RoleBinding", "ConfigMap"]
    for document in documents:
        assert kubernetes_problems(document) == [], document["kind"]


def test_the_deploy_role_allows_exactly_what_the_deploy_step_does():
    role = next(d for d in load_documents(MANIFESTS / "rbac-deploy.yaml") if d["kind"] == "Role")
    verbs = {verb for rule in role["rules"] if "inferenceservices" in rule["resources"] for verb in rule["verbs"]}
    assert {"get", "create", "patch"} <= verbs and "delete" not in verbs
    binding = next(d for d in load_documents(MANIFESTS / "rbac-deploy.yaml") if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_pytorchjob_pods_are_valid_secure_and_run_one_process_per_gpu():
    (job,) = load_documents(MANIFESTS / "pytorchjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"}
    for name, replica in replicas.items():
        template = replica["template"]
        assert pod_template_problems(template) == [], name
        assert security_problems(template["spec"]) == [], name
        (container,) = template["spec"]["containers"]
        assert resource_problems(container) == [], name
        gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
        assert container["command"] == ["python", "-m", "components.train"]
        image_paths = [a.split("#")[0].strip().replace("=/app/", f"={REPO}/") for a in container["args"]]
        config, args = parse_arguments(image_paths)  # the real command line parses it
        assert args.nproc_per_node == gpus == int(job["spec"]["nprocPerNode"])
        nodes = sum(r["replicas"] for r in replicas.values())
        assert config.batch_size % (gpus * nodes) == 0 and config.preset == "xmcgan-128"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        assert config.run_dir.startswith(mounts["runs"]["mountPath"]) and "persistentVolumeClaim" in volumes["runs"]


def test_component_image_installs_the_lock_and_runs_as_non_root():
    instructions = dockerfile_instructions(MANIFESTS / "component.Dockerfile")
    kinds = [kind for kind, _ in instructions]
    assert kinds[0] == "FROM" and "python:3.11" in instructions[0][1]
    assert any(kind == "RUN" and "pip install --no-deps -r requirements.lock" in arg for kind, arg in instructions)
    assert any(kind == "RUN" and "pip check" in arg for kind, arg in instructions)
    user = [arg for kind, arg in instructions if kind == "USER"]
    assert user and user[-1] not in ("root", "0")
    copied = [arg.split()[0] for kind, arg in instructions if kind == "COPY"]
    for source in ("requirements.lock", "model", "components", "pipelines"):
        assert source in copied


def test_recurring_run_spec_names_only_real_pipeline_parameters():

    (spec,) = load_documents(MANIFESTS / "recurring-run.yaml")
    assert len(spec["cron"].split()) == 6
    assert check_parameters(spec["parameters"]) == spec["parameters"]  # raises on an unknown name or setting


def test_the_deployed_inference_service_is_the_manifest_pointed_at_the_new_version():
    service = inference_service(
        model_uri="models:/xmcgan/7",
        tracking_uri="http://mlflow:5000",
        namespace="team-a",
        image="registry.example/xmcgan-serving:1",
    )
    assert roundtrip_problems(service) == []
    container = service["spec"]["predictor"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert (
        env["MODEL_URI"]["value"] == "models:/xmcgan/7" and env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    )
    assert service["metadata"]["namespace"] == "team-a" and container["image"] == "registry.example/xmcgan-serving:1"
    assert "--model-uri=$(MODEL_URI)" in container["args"]


class FakeCustomObjects:
    """The three calls deploy_kserve makes, recorded; the service turns Ready on the second poll."""

    def __init__(self, *, exists: bool):
        self.exists, self.calls, self.polls = exists, [], 0

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        from kubernetes.client.exceptions import ApiException

        self.calls.append(("patch", namespace, name, body))
        if not self.exists:
            raise ApiException(status=404)

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.calls.append(("create", namespace, body["metadata"]["name"], body))

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.polls += 1
        ready = self.polls >= 2
        return {
            "status": {
                "url": f"http://{name}.{namespace}.example.com" if ready else None,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            }
        }


@pytest.mark.parametrize("exists", [True, False], ids=["patch-existing", "create-new"])
def test_kserve_deploy_patches_or_creates_then_waits_for_ready(monkeypatch, tmp_path, exists):
    import components.deploy.run as deploy_module

    requested = {}
    monkeypatch.setattr(deploy_module.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(
        deploy_module,
        "request_images",
        lambda url, **kw: requested.update(url=url, **kw) or {"response": {}, "files": ["a.png"]},
    )
    api = FakeCustomObjects(exists=exists)
    result = deploy_kserve(
        model_uri="models:/xmcgan/3",
        tracking_uri="",
        namespace="team-a",
        image="img:1",
        out=tmp_path,
        prompts=["a red circle"],
        api=api,
    )
    assert [c[0] for c in api.calls] == (["patch"] if exists else ["patch", "create"])
    body = api.calls[-1][3]
    env = {e["name"]: e for e in body["spec"]["predictor"]["containers"][0]["env"]}
    assert env["MODEL_URI"]["value"] == "models:/xmcgan/3"
    assert "valueFrom" in env["MLFLOW_TRACKING_URI"]  # no URI given: the cluster's ConfigMap stays
    assert api.polls == 2 and result["url"] == "http://xmcgan.team-a.example.com"
    assert re.fullmatch(r"http://xmcgan-predictor\.team-a\.svc\.cluster\.local", requested["url"])
