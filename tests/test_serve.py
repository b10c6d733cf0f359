"""Serving, in process: request validation, the micro-batcher, model sources (local and a real
sqlite MLflow registry), and kserve's app with the request gate (readiness, error shapes)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from serve_support import write_model, write_tiny_text_encoder

from components.serve.batching import ImageJob, MicroBatcher, QueueFull
from components.serve.config import ServeConfig
from components.serve.loading import parse_registry_uri, resolve_model_source
from components.serve.protocol import MAX_SEED, RequestLimits, offered_sizes, parse_v1, parse_v2

LIMITS = RequestLimits(
    max_prompts=4, max_images_per_prompt=3, max_images_per_request=6, max_prompt_chars=40, sizes=(64, 32, 16)
)


def v1(*prompts, **parameters) -> dict:
    body = {"instances": [{"prompt": p} for p in prompts]}
    return {**body, "parameters": parameters} if parameters else body


def v2(data: list, *, shape=None, datatype="BYTES", name="prompt", parameters=None, outputs=None) -> InferRequest:
    body = {"inputs": [{"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}]}
    body |= {"parameters": parameters} if parameters else {}
    body |= {"outputs": outputs} if outputs else {}
    return InferRequest.from_inference_request(InferenceRequest(**body), "xmcgan")


def error_of(parse, body) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse(body, LIMITS)
    return str(caught.value)


# --- protocol ---------------------------------------------------------------------------------


def test_v1_request_with_defaults_and_with_every_option():
    request = parse_v1(v1("a red circle"), LIMITS)
    assert request.prompts == ("a red circle",) and request.images_per_prompt == 1 and request.size == 64
    assert 0 <= request.seed <= MAX_SEED  # drawn by the server, returned to the client
    request = parse_v1(v1("a", "b", images_per_prompt=3, seed=7, size=16), LIMITS)
    assert (request.prompts, request.images_per_prompt, request.seed, request.size) == (("a", "b"), 3, 7, 16)
    assert request.image_count == 6


def test_v2_request_parses_like_v1():
    request = parse_v2(v2(["a", "b"], parameters={"images_per_prompt": 2, "seed": 7, "size": 32}), LIMITS)
    assert request == parse_v1(v1("a", "b", images_per_prompt=2, seed=7, size=32), LIMITS)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (v1(""), "instances[0].prompt: a prompt must not be empty or whitespace"),
        (v1("ok", " \t\n"), "instances[1].prompt: a prompt must not be empty or whitespace"),
        ({"instances": [{"prompt": 5}]}, "instances[0].prompt: a prompt must be a string, got integer"),
        ({"instances": [{"prompt": None}]}, "instances[0].prompt: a prompt must be a string, got null"),
        (v1("x" * 41), "instances[0].prompt: the prompt is 41 characters long; the limit is 40"),
        (v1(*"abcde"), "instances: 5 prompts; the limit is 4 per request"),
        ({"instances": []}, "instances: at least one prompt is required"),
        (v1("a", images_per_prompt=4), "parameters.images_per_prompt: must be an integer in [1, 3], got 4"),
        (v1("a", "b", "c", images_per_prompt=3), "parameters.images_per_prompt: 3 prompts x 3 images = 9 images"),
        (v1("a", seed=-1), f"parameters.seed: must be an integer in [0, {MAX_SEED}], got -1"),
        (v1("a", seed=MAX_SEED + 1), "parameters.seed: must be an integer"),
        (v1("a", seed=1.5), "parameters.seed: must be an integer in [0, 4294967295], got number"),
        (v1("a", seed="7"), "parameters.seed: must be an integer in [0, 4294967295], got string"),
        (v1("a", seed=True), "parameters.seed: must be an integer in [0, 4294967295], got boolean"),
        (v1("a", size=48), "parameters.size: must be one of [64, 32, 16], got 48"),
        (v1("a", size=32.0), "parameters.size: must be one of [64, 32, 16], got 32.0"),
        ({**v1("a"), "extra": 1}, "extra: unknown field; allowed: instances, parameters"),
        ({"instances": [{"prompt": "a", "negative": "b"}]}, "instances[0].negative: unknown field; allowed: prompt"),
        (v1("a", steps=10), "parameters.steps: unknown field; allowed: images_per_prompt, seed, size"),
        ({"prompt": "a"}, "prompt: unknown field"),
        ({}, "instances: required"),
        ({"instances": "a red circle"}, "instances: must be an array, got string"),
        ({"instances": ["a red circle"]}, "instances[0]: must be a JSON object, got string"),
        ([1, 2], "body: must be a JSON object, got array"),
        ({"instances": [{"prompt": "a"}], "parameters": [1]}, "parameters: must be a JSON object, got array"),
    ],
)
def test_v1_validation_names_the_field(body, expected):
    assert error_of(parse_v1, body).startswith(expected)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (lambda: v2(["a"], name="text"), "inputs[0].name: unknown input 'text'; the only input is 'prompt'"),
        (lambda: v2(["a"], datatype="FP32"), "inputs[0].datatype: must be BYTES, got 'FP32'"),
        (lambda: v2(["a", "b"], shape=[1, 2]), "inputs[0].shape: must be [2] for 2 prompts, got [1, 2]"),
        (lambda: v2(["a", 3]), "inputs[0].data[1]: a prompt must be a string, got integer"),
        (lambda: v2([" "]), "inputs[0].data[0]: a prompt must not be empty or whitespace"),
        (lambda: v2(["a"] * 5), "inputs[0].data: 5 prompts; the limit is 4 per request"),
        (lambda: v2(["a"], parameters={"seed": -3}), "parameters.seed: must be an integer"),
        (lambda: v2(["a"], parameters={"binary_data_output": True}), "parameters.binary_data_output: unknown field"),
        (lambda: v2(["a"], outputs=[{"name": "latents"}]), "outputs[0].name: unknown output 'latents'"),
    ],
)
def test_v2_validation_names_the_field(request_, expected):
    assert error_of(parse_v2, request_()).startswith(expected)


def test_offered_sizes_are_native_and_downscales():
    assert offered_sizes(128) == (128, 64, 32)
    assert offered_sizes(32) == (32, 16)
    assert offered_sizes(16) == (16,)


def test_config_rejects_limits_that_cannot_be_met():
    with pytest.raises(ValueError, match=r"max_images_per_request \(32\) must not exceed max_queued_images \(16\)"):
        ServeConfig(max_images_per_request=32, max_queued_images=16)
    with pytest.raises(ValueError, match="max_prompts must be at least 1"):
        ServeConfig(max_prompts=0)


# --- micro-batcher --------------------------------------------------------------------------------


class RecordingRender:
    """Images whose pixels encode their job, so routing errors show; records each call's jobs."""

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[list[ImageJob]] = []
        self.gate = gate

    def __call__(self, jobs):
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append(list(jobs))
        return np.stack([np.full((2, 2, 3), [hash(j.prompt) % 251, j.seed % 251, j.index], np.uint8) for j in jobs])


def expected(jobs):
    return np.stack([np.full((2, 2, 3), [hash(j.prompt) % 251, j.seed % 251, j.index], np.uint8) for j in jobs])


def jobs_of(prompt: str, count: int, seed: int = 0) -> list[ImageJob]:
    return [ImageJob(prompt, seed, i) for i in range(count)]


def test_concurrent_requests_share_batches_and_get_their_own_images():
    render = RecordingRender()

    async def scenario():
        batcher = MicroBatcher(render, max_batch=4, wait_s=0.05, max_queued=64)
        requests = [jobs_of(f"prompt {i}", 1 + i % 3, seed=i) for i in range(6)]  # 12 images
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        batcher.close()
        return requests, results

    requests, results = asyncio.run(scenario())
    for jobs, images in zip(requests, results, strict=True):
        np.testing.assert_array_equal(images, expected(jobs))
    assert [len(call) for call in render.calls] == [4, 4, 4]  # 12 images in full batches, requests split across
    assert [job for call in render.calls for job in call] == [job for r in requests for job in r]  # arrival order


def test_a_lone_request_waits_only_the_window():
    render = RecordingRender()

    async def scenario():
        batcher = MicroBatcher(render, max_batch=8, wait_s=0.01, max_queued=8)
        images = await asyncio.wait_for(batcher.submit(jobs_of("a", 2)), timeout=5)
        batcher.close()
        return images

    assert len(asyncio.run(scenario())) == 2
    assert [len(call) for call in render.calls] == [2]


def test_full_queue_refuses_at_once_and_recovers():
    gate = threading.Event()
    render = RecordingRender(gate)

    async def scenario():
        batcher = MicroBatcher(render, max_batch=2, wait_s=0.0, max_queued=3)
        first = asyncio.ensure_future(batcher.submit(jobs_of("a", 2)))  # taken into the (blocked) batch
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.submit(jobs_of("b", 3)))  # fills the queue
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="3 images are queued; the limit is 3"):
            await batcher.submit(jobs_of("c", 1))
        gate.set()
        done = await asyncio.gather(first, second)
        later = await batcher.submit(jobs_of("c", 1))  # room again
        batcher.close()
        return done, later, batcher.queued

    (first, second), later, queued = asyncio.run(scenario())
    assert len(first) == 2 and len(second) == 3 and len(later) == 1 and queued == 0


def test_a_failed_batch_fails_its_requests_and_the_worker_carries_on():
    calls = []

    def render(jobs):
        calls.append(len(jobs))
        if any(job.prompt == "poison" for job in jobs):
            raise RuntimeError("generator exploded")
        return expected(jobs)

    async def scenario():
        batcher = MicroBatcher(render, max_batch=2, wait_s=0.02, max_queued=16)
        results = await asyncio.gather(
            batcher.submit(jobs_of("poison", 3)), batcher.submit(jobs_of("fine", 1)), return_exceptions=True
        )
        after = await batcher.submit(jobs_of("later", 1))
        batcher.close()
        return results, after, batcher.queued

    (poisoned, fine), after, queued = asyncio.run(scenario())
    assert isinstance(poisoned, RuntimeError)
    # the poisoned request's third job was dropped, not rendered; the other request was rendered
    np.testing.assert_array_equal(fine, expected(jobs_of("fine", 1)))
    np.testing.assert_array_equal(after, expected(jobs_of("later", 1)))
    assert calls == [2, 1, 1] and queued == 0


# --- model sources ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    encoder = write_tiny_text_encoder(root / "encoder")
    return write_model(root / "model", text_encoder=encoder, provenance={"run_id": "unit-test"})


def test_registry_uris_parse():
    assert parse_registry_uri("models:/xmcgan@champion").alias == "champion"
    assert parse_registry_uri("models:/xmcgan/3").version == "3"
    assert parse_registry_uri("/models/xmcgan") is None
    for bad in ("models:/xmcgan", "models:/xmcgan/latest", "models:/a/b/c"):
        with pytest.raises(ValueError, match="models:/"):
            parse_registry_uri(bad)


def test_local_folder_source_is_versioned_by_its_weights(tiny_model, tmp_path):
    source = resolve_model_source(str(tiny_model))
    assert source.path == tiny_model and source.version.startswith("sha256:") and len(source.version) == 19
    with pytest.raises(FileNotFoundError, match=r"is not a model folder; missing config\.json, generator\.safetensors"):
        resolve_model_source(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(
        FileNotFoundError, match=r"model path: .* is not a model folder; missing generator\.safetensors$"
    ):
        resolve_model_source(str(tmp_path))


def test_registry_source_resolves_alias_to_a_pinned_version(tiny_model, tmp_path):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.create_experiment("serve-test", artifact_location=str(tmp_path / "artifacts"))
    client.create_registered_model("xmcgan")
    for _ in range(2):  # versions 1 and 2; champion points at 1
        run = client.create_run(experiment)
        client.log_artifacts(run.info.run_id, str(tiny_model), artifact_path="model")
        client.create_model_version("xmcgan", source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("xmcgan", "champion", "1")

    champion = resolve_model_source("models:/xmcgan@champion", tracking_uri=tracking_uri, download_dir=tmp_path / "a")
    assert (champion.version, champion.uri) == ("1", "models:/xmcgan/1")
    assert (champion.path / "generator.safetensors").read_bytes() == (tiny_model / "generator.safetensors").read_bytes()
    pinned = resolve_model_source("models:/xmcgan/2", tracking_uri=tracking_uri, download_dir=tmp_path / "b")
    assert pinned.version == "2"
    with pytest.raises(MlflowException):
        resolve_model_source("models:/xmcgan@missing", tracking_uri=tracking_uri)


# --- kserve's app with the gate, in process ---------------------------------------------------------


@pytest.fixture(scope="module")
def app_and_model(tiny_model):
    """kserve's (module-global) app serving the tiny model, not yet loaded."""
    import torch

    from components.serve.predictor import XMCGANPredictor
    from components.serve.server import build_app

    mkldnn = torch.backends.mkldnn.enabled  # the predictor turns oneDNN off process-wide; restore it
    config = ServeConfig(model_uri=str(tiny_model), host="127.0.0.1", http_port=0, max_body_bytes=4096)
    model = XMCGANPredictor(config)
    app, uvicorn_config = build_app(config, model)
    assert (uvicorn_config.host, uvicorn_config.limit_concurrency) == ("127.0.0.1", config.max_connections)
    yield app, model
    model.stop()
    torch.backends.mkldnn.enabled = mkldnn


@pytest.fixture(scope="module")
def client(app_and_model):
    from fastapi.testclient import TestClient

    app, model = app_and_model
    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert test_client.get("/v2/models/xmcgan/ready").status_code == 503  # registered, not loaded
        assert test_client.get("/v2/health/live").status_code == 200
        model.load()
        yield test_client


def test_readiness_follows_loading(client, app_and_model):
    _, model = app_and_model
    assert client.get("/v2/models/xmcgan/ready").json() == {"name": "xmcgan", "ready": True}
    model.ready = False
    try:
        assert client.get("/v2/models/xmcgan/ready").status_code == 503
        response = client.post("/v1/models/xmcgan:predict", json=v1("a red circle"))
        assert response.status_code == 503 and "not ready" in response.json()["error"]
    finally:
        model.ready = True


def test_gate_bounds_and_types_the_body(client):
    big = client.post("/v1/models/xmcgan:predict", json=v1("x" * 5000))
    size = big.request.headers["content-length"]
    assert big.status_code == 413 and big.json() == {"error": f"request body is {size} bytes; the limit is 4096 bytes"}
    form = client.post("/v2/models/xmcgan/infer", content=b"prompt=a", headers={"content-type": "text/plain"})
    assert form.status_code == 415 and form.json() == {
        "error": "Content-Type must be application/json, got 'text/plain'"
    }
    broken = client.post(
        "/v2/models/xmcgan/infer", content=b'{"inputs": [', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"].startswith("malformed JSON body: ")
    charset = client.post(
        "/v1/models/xmcgan:predict",
        content=b'{"instances": [{"prompt": "a"}]}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


def test_model_repository_api_cannot_unload_the_model(client):
    for path in ("/v2/repository/models/xmcgan/unload", "/v2/repository/models/xmcgan/load", "/v2/repository/index"):
        response = client.post(path)
        assert response.status_code == 403 and "repository API is disabled" in response.json()["error"]
    assert client.get("/v2/models/xmcgan/ready").status_code == 200


def test_v2_schema_errors_name_the_field(client):
    response = client.post(
        "/v2/models/xmcgan/infer", json={"inputs": [{"name": "prompt", "datatype": "BYTES", "data": ["a"]}]}
    )
    assert response.status_code == 400 and response.json() == {"error": "inputs[0].shape: Field required"}
    response = client.post(
        "/v2/models/xmcgan/infer",
        json={
            "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a"]}],
            "parameters": {"seed": None},
        },
    )
    assert response.json() == {"error": "parameters.seed: must be a number, integer, boolean or string, got null"}


def test_server_errors_hide_their_details(client, app_and_model, monkeypatch):
    _, model = app_and_model

    def explode(jobs):
        raise RuntimeError("secret path /var/lib/model exploded")

    monkeypatch.setattr(model.batcher, "render", explode)
    response = client.post("/v1/models/xmcgan:predict", json=v1("a red circle"))
    assert response.status_code == 500
    assert response.json()["error"].startswith("internal server error (reference ")
    assert "secret" not in response.text and "Traceback" not in response.text


def test_full_queue_is_503_with_retry_after(client, app_and_model, monkeypatch):
    _, model = app_and_model

    async def refuse(jobs):
        raise QueueFull("64 images are queued; the limit is 64")

    monkeypatch.setattr(model.batcher, "submit", refuse)
    response = client.post("/v1/models/xmcgan:predict", json=v1("a red circle"))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json() == {"error": "server busy: 64 images are queued; the limit is 64; retry after 1 s"}


def test_model_metadata_describes_the_v2_tensors(client):
    metadata = client.get("/v2/models/xmcgan").json()
    assert metadata["inputs"] == [{"name": "prompt", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1, -1]}]
