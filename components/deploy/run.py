"""Deploy the champion: on this machine (start the KServe server, ask it for images, stop it) or
on a cluster (point the InferenceService at the new model version and wait until it is Ready).

Either way the deploy ends with a real request answered by the deployed server, whose images
are saved: a deploy that cannot serve fails the step.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "inferenceservice.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_images(
    base_url: str, *, model_name: str, prompts: list[str], seed: int, out: Path, timeout: float = 120.0
) -> dict:
    """POST a V1 predict request; write the returned PNGs to `out`; returns the response without image bytes."""
    response = httpx.post(
        f"{base_url}/v1/models/{model_name}:predict",
        timeout=timeout,
        json={"instances": [{"prompt": p} for p in prompts], "parameters": {"seed": seed}},
    )
    response.raise_for_status()
    body = response.json()
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for p, prediction in enumerate(body["predictions"]):
        for k, image in enumerate(prediction["images"]):
            path = out / f"prompt{p}-image{k}.png"
            path.write_bytes(base64.b64decode(image))
            saved.append(path.name)
        prediction.pop("images")
    (out / "response.json").write_text(json.dumps(body, indent=2))
    return {"response": body, "files": saved}


def deploy_local(
    *,
    model_uri: str,
    tracking_uri: str,
    model_name: str,
    out: str | Path,
    prompts: list[str],
    seed: int = 0,
    ready_timeout: float = 180.0,
) -> dict:
    """Start `python -m components.serve` on 127.0.0.1, wait until the model is ready, request images, stop."""
    out, port = Path(out), _free_port()
    out.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}"
    log = open(out / "server.log", "w")  # noqa: SIM115 - the server writes to it until it is stopped below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "components.serve",
            "--model-uri",
            model_uri,
            "--tracking-uri",
            tracking_uri,
            "--model-name",
            model_name,
            "--host",
            "127.0.0.1",
            "--http-port",
            str(port),
            "--enable-grpc",  # the proof uses REST; a fixed gRPC port could clash with another local server
            "false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    try:
        deadline = time.time() + ready_timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the model server exited with code {server.returncode}: see {out / 'server.log'}")
            try:
                if httpx.get(f"{base_url}/v2/models/{model_name}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise TimeoutError(f"the model server was not ready within {ready_timeout:.0f} s")
            time.sleep(0.5)
        result = request_images(base_url, model_name=model_name, prompts=prompts, seed=seed, out=out)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return {"mode": "local", "url": base_url, "model_uri": model_uri, **result}


def inference_service(*, model_uri: str, tracking_uri: str, namespace: str, image: str) -> dict:
    """The InferenceService of manifests/inferenceservice.yaml, pointed at `model_uri`."""
    service = yaml.safe_load(MANIFEST.read_text())
    service["metadata"]["namespace"] = namespace
    container = service["spec"]["predictor"]["containers"][0]
    container["image"] = image
    env = {e["name"]: e for e in container.setdefault("env", [])}
    env["MODEL_URI"] = {"name": "MODEL_URI", "value": model_uri}
    if tracking_uri:  # else the cluster's xmcgan-config ConfigMap, as in the manifest
        env["MLFLOW_TRACKING_URI"] = {"name": "MLFLOW_TRACKING_URI", "value": tracking_uri}
    container["env"] = list(env.values())
    return service


def deploy_kserve(
    *,
    model_uri: str,
    tracking_uri: str,
    namespace: str,
    image: str,
    out: str | Path,
    prompts: list[str],
    seed: int = 0,
    ready_timeout: float = 900.0,
    api=None,
) -> dict:
    """Create or patch the InferenceService (in-cluster credentials: the xmcgan-deployer service
    account of manifests/rbac-deploy.yaml), wait for Ready, then request images from it."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    if api is None:
        config.load_incluster_config()
        api = client.CustomObjectsApi()
    service = inference_service(model_uri=model_uri, tracking_uri=tracking_uri, namespace=namespace, image=image)
    name, group, version, plural = service["metadata"]["name"], "serving.kserve.io", "v1beta1", "inferenceservices"
    try:
        api.patch_namespaced_custom_object(group, version, namespace, plural, name, service)
    except ApiException as error:
        if error.status != 404:
            raise
        api.create_namespaced_custom_object(group, version, namespace, plural, service)
    deadline = time.time() + ready_timeout
    while True:
        status = api.get_namespaced_custom_object(group, version, namespace, plural, name).get("status", {})
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
        if ready and status.get("url"):
            break
        if time.time() > deadline:
            raise TimeoutError(f"InferenceService {namespace}/{name} not Ready within {ready_timeout:.0f} s: {status}")
        time.sleep(5)
    url = f"http://{name}-predictor.{namespace}.svc.cluster.local"  # in-cluster: the predictor's own service
    result = request_images(url, model_name=name, prompts=prompts, seed=seed, out=Path(out))
    return {"mode": "kserve", "url": status["url"], "model_uri": model_uri, **result}
