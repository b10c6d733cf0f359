"""The real server (`python -m components.serve`) on 127.0.0.1 serving the champion of a real
sqlite MLflow registry, over HTTP and gRPC (a real gRPC client): both protocols, seeds, batch
invariance across requests and protocols, every validation error, a failed load, and a bounded
load test with no 5xx and stable memory."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import re
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.infer_type import InferInput, InferRequest
from PIL import Image
from serve_support import ServerProcess, write_model, write_tiny_text_encoder

pytestmark = pytest.mark.slow

PREDICT = "/v1/models/xmcgan:predict"
INFER = "/v2/models/xmcgan/infer"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-http")
    encoder = write_tiny_text_encoder(root / "encoder")
    return write_model(root / "model", text_encoder=encoder, provenance={"run_id": "http-test"})


@pytest.fixture(scope="module")
def registry(tiny_model, tmp_path_factory) -> str:
    """A sqlite MLflow registry whose model `xmcgan` has version 1 (the tiny model) as `champion`."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.create_experiment("serve-http", artifact_location=str(root / "artifacts"))
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(tiny_model), artifact_path="model")
    client.create_registered_model("xmcgan")
    client.create_model_version("xmcgan", source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("xmcgan", "champion", "1")
    return tracking_uri


@pytest.fixture(scope="module")
def server(registry, tmp_path_factory):
    """The production path: the champion of an MLflow registry. A wide batch window makes
    concurrent requests in these tests reliably share batches."""
    root = tmp_path_factory.mktemp("server")
    args = ("--model-uri", "models:/xmcgan@champion", "--tracking-uri", registry, "--batch-wait-ms", "30")
    with ServerProcess(*args, env={"TMPDIR": str(root)}, log=root / "server.log") as process:
        process.wait_ready()
        yield process


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def v1(*prompts, **parameters) -> dict:
    return {"instances": [{"prompt": p} for p in prompts], **({"parameters": parameters} if parameters else {})}


def v2(*prompts, **parameters) -> dict:
    body = {"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [len(prompts)], "data": list(prompts)}]}
    return {**body, **({"parameters": parameters} if parameters else {})}


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def predict(http, *prompts, **parameters) -> dict:
    response = http.post(PREDICT, json=v1(*prompts, **parameters))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def grpc_stub(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)


def grpc_request(*prompts, **parameters):
    """The V2 gRPC request, as kserve's own clients build it."""
    tensor = InferInput(name="prompt", shape=[len(prompts)], datatype="BYTES", data=list(prompts))
    return InferRequest(model_name="xmcgan", infer_inputs=[tensor], parameters=parameters or None).to_grpc()


def grpc_images(response) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in response.outputs[0].contents.bytes_contents
    ]


def batch_counts(http) -> tuple[float, float]:
    """(generator calls, images rendered) so far, from the server's Prometheus metrics."""
    text = http.get("/metrics").text
    count = float(re.search(r"^xmcgan_serve_batch_images_count (\S+)$", text, re.M).group(1))
    total = float(re.search(r"^xmcgan_serve_batch_images_sum (\S+)$", text, re.M).group(1))
    return count, total


def test_server_proved_batched_rendering_bit_exact_at_load(server, http):
    assert http.get("/v2/models/xmcgan/ready").json() == {"name": "xmcgan", "ready": True}
    assert "batched rendering bit-exact: True" in server.log_path.read_text()


def test_v1_and_v2_give_the_same_images_with_model_name_version_and_seed(http):
    one = predict(http, "a red circle", "a blue square", images_per_prompt=2, seed=11)
    assert [p["prompt"] for p in one["predictions"]] == ["a red circle", "a blue square"]
    assert (one["model_name"], one["model_version"], one["seed"], one["size"]) == ("xmcgan", "1", 11, 32)
    response = http.post(
        INFER, json={"id": "req-7", **v2("a red circle", "a blue square", images_per_prompt=2, seed=11)}
    )
    assert response.status_code == 200, response.text
    two = response.json()
    assert (two["id"], two["model_name"], two["model_version"]) == ("req-7", "xmcgan", one["model_version"])
    assert two["parameters"] == {"seed": 11, "size": 32, "images_per_prompt": 2}
    (image,) = two["outputs"]
    assert (image["name"], image["datatype"], image["shape"]) == ("image", "BYTES", [2, 2])
    assert image["data"] == [b64 for p in one["predictions"] for b64 in p["images"]]
    assert decode(image["data"][0]).shape == (32, 32, 3)
    assert len({*image["data"]}) == 4  # every image of the request is its own
    anonymous = http.post(INFER, json=v2("a red circle", seed=11)).json()  # no id sent: the server makes one
    assert anonymous["id"] and anonymous["outputs"][0]["data"][0] == image["data"][0]


def test_seeds_reproduce_and_are_returned(http):
    drawn = predict(http, "a green triangle")
    again = predict(http, "a green triangle", seed=drawn["seed"])
    assert again["predictions"] == drawn["predictions"]
    other = predict(http, "a green triangle", seed=(drawn["seed"] + 1) % 2**32)
    assert other["predictions"] != drawn["predictions"]


def test_smaller_sizes_are_box_downscales_of_the_native_image(http):
    native = decode(predict(http, "a red circle", seed=3)["predictions"][0]["images"][0])
    small = decode(predict(http, "a red circle", seed=3, size=16)["predictions"][0]["images"][0])
    assert small.shape == (16, 16, 3)
    np.testing.assert_array_equal(small, np.asarray(Image.fromarray(native).resize((16, 16), Image.Resampling.BOX)))


def test_served_images_are_the_pipelines_images(http, tiny_model):
    from model.sampling import TextToImage

    served = [
        decode(b64) for b64 in predict(http, "a red circle", images_per_prompt=2, seed=5)["predictions"][0]["images"]
    ]
    direct = TextToImage.from_pretrained(tiny_model)(["a red circle"], seed=5, images_per_prompt=2)
    # this test process may run other BLAS kernels than the server: allow a last-bit rounding flip
    difference = np.abs(np.stack(served).astype(int) - direct.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99


def test_images_do_not_depend_on_what_shares_their_batch(http):
    alone = predict(http, "a red circle", images_per_prompt=2, seed=9)["predictions"][0]["images"]
    # in one request: the same prompt among others, at another position of one generator call
    mixed = predict(http, "a blue square", "a red circle", "two stars", images_per_prompt=2, seed=9)
    assert mixed["predictions"][1]["images"] == alone

    async def concurrent():
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=60.0) as client:
            bodies = [v1(f"prompt number {i}", seed=100 + i) for i in range(7)] + [v1("a red circle", seed=9)]
            return await asyncio.gather(*(client.post(PREDICT, json=body) for body in bodies))

    calls_before, images_before = batch_counts(http)
    responses = asyncio.run(concurrent())
    calls_after, images_after = batch_counts(http)
    assert all(r.status_code == 200 for r in responses)
    assert responses[-1].json()["predictions"][0]["images"] == alone[:1]
    assert images_after - images_before == 8
    assert calls_after - calls_before < 8  # requests really shared generator calls


def test_grpc_gives_the_rest_images_and_identity(http, grpc_stub):
    rest = predict(http, "a red circle", "a blue square", images_per_prompt=2, seed=11)
    response = grpc_stub.ModelInfer(grpc_request("a red circle", "a blue square", images_per_prompt=2, seed=11))
    (image,) = response.outputs
    assert (response.model_name, response.model_version, list(image.shape)) == ("xmcgan", "1", [2, 2])
    pngs = list(image.contents.bytes_contents)
    assert [base64.b64encode(png).decode() for png in pngs] == [b64 for p in rest["predictions"] for b64 in p["images"]]
    assert response.parameters["seed"].int64_param == 11


def test_rest_and_grpc_requests_share_generator_calls_and_keep_their_images(http, grpc_stub, server):
    alone = predict(http, "a red circle", seed=21)["predictions"][0]["images"][0]

    async def concurrent():
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=60.0) as client,
            grpc.aio.insecure_channel(server.grpc_target) as channel,
        ):
            stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
            rest = [client.post(PREDICT, json=v1(f"rest prompt {i}", seed=i)) for i in range(4)]
            rpc = [stub.ModelInfer(grpc_request(f"grpc prompt {i}", seed=i)) for i in range(3)]
            rpc.append(stub.ModelInfer(grpc_request("a red circle", seed=21)))
            return await asyncio.gather(*rest), await asyncio.gather(*rpc)

    calls_before, images_before = batch_counts(http)
    rest, rpc = asyncio.run(concurrent())
    calls_after, images_after = batch_counts(http)
    assert all(r.status_code == 200 for r in rest)
    assert base64.b64encode(rpc[-1].outputs[0].contents.bytes_contents[0]).decode() == alone
    assert images_after - images_before == 8 and calls_after - calls_before < 8


@pytest.mark.parametrize(
    ("prompts", "parameters", "error"),
    [
        (["ok", "\n\t"], {}, "inputs[0].data[1]: a prompt must not be empty or whitespace"),
        (["x" * 1001], {}, "inputs[0].data[0]: the prompt is 1001 characters long; the limit is 1000"),
        (["a"] * 9, {}, "inputs[0].data: 9 prompts; the limit is 8 per request"),
        (["a"], {"images_per_prompt": 5}, "parameters.images_per_prompt: must be an integer in [1, 4], got 5"),
        (["a"], {"seed": "42"}, "parameters.seed: must be an integer in [0, 4294967295], got string"),
        (["a"], {"size": 64}, "parameters.size: must be one of [32, 16], got 64"),
        (["a"], {"guidance": 7}, "parameters.guidance: unknown field; allowed: images_per_prompt, seed, size"),
    ],
)
def test_grpc_validation_errors_are_invalid_argument_with_the_rest_message(http, grpc_stub, prompts, parameters, error):
    rest = http.post(INFER, json=v2(*prompts, **parameters))
    assert rest.status_code == 400 and rest.json()["error"] == error
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.ModelInfer(grpc_request(*prompts, **parameters), timeout=60)
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, error)


TOO_LONG = "x" * 1001


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        (PREDICT, v1(""), 400, "instances[0].prompt: a prompt must not be empty or whitespace"),
        (PREDICT, v1("   "), 400, "instances[0].prompt: a prompt must not be empty or whitespace"),
        (INFER, v2("ok", "\n\t"), 400, "inputs[0].data[1]: a prompt must not be empty or whitespace"),
        (PREDICT, {"instances": [{"prompt": ["a"]}]}, 400, "instances[0].prompt: a prompt must be a string, got array"),
        (INFER, v2("a", 7), 400, "inputs[0].data[1]: a prompt must be a string, got integer"),
        (PREDICT, v1(TOO_LONG), 400, "instances[0].prompt: the prompt is 1001 characters long; the limit is 1000"),
        (INFER, v2(TOO_LONG), 400, "inputs[0].data[0]: the prompt is 1001 characters long; the limit is 1000"),
        (PREDICT, v1(*["a"] * 9), 400, "instances: 9 prompts; the limit is 8 per request"),
        (INFER, v2(*["a"] * 9), 400, "inputs[0].data: 9 prompts; the limit is 8 per request"),
        (
            PREDICT,
            v1("a", images_per_prompt=5),
            400,
            "parameters.images_per_prompt: must be an integer in [1, 4], got 5",
        ),
        (
            PREDICT,
            v1(*["a"] * 5, images_per_prompt=4),
            400,
            "parameters.images_per_prompt: 5 prompts x 4 images = 20 images; the limit is 16 per request",
        ),
        (PREDICT, v1("a", seed=-5), 400, "parameters.seed: must be an integer in [0, 4294967295], got -5"),
        (PREDICT, v1("a", seed="42"), 400, "parameters.seed: must be an integer in [0, 4294967295], got string"),
        (INFER, v2("a", seed=2.5), 400, "parameters.seed: must be an integer in [0, 4294967295], got number"),
        (PREDICT, v1("a", size=64), 400, "parameters.size: must be one of [32, 16], got 64"),
        (PREDICT, {**v1("a"), "top_k": 3}, 400, "top_k: unknown field; allowed: instances, parameters"),
        (
            PREDICT,
            v1("a", guidance=7),
            400,
            "parameters.guidance: unknown field; allowed: images_per_prompt, seed, size",
        ),
        (INFER, {**v2("a"), "priority": 1}, 400, "priority: unknown field; allowed: id, parameters, inputs, outputs"),
        (INFER, {"inputs": [{**v2("a")["inputs"][0], "note": "x"}]}, 400, "inputs[0].note: unknown field"),
        (INFER, {"inputs": [{**v2("a")["inputs"][0], "name": "text"}]}, 400, "inputs[0].name: unknown input 'text'"),
        (PREDICT, b'{"instances": [{"prompt": "a"}', 400, "malformed JSON body: "),
        (INFER, b'{"inputs": }', 400, "malformed JSON body: "),
        (PREDICT, b"", 400, "malformed JSON body: "),
        (PREDICT, ("text/plain", b"a red circle"), 415, "Content-Type must be application/json, got 'text/plain'"),
        (INFER, ("application/x-www-form-urlencoded", b"prompt=a"), 415, "Content-Type must be application/json"),
        (PREDICT, (None, b'{"instances": [{"prompt": "a"}]}'), 415, "Content-Type must be application/json, got none"),
        (PREDICT, v1("a" * 70_000), 413, "request body is 70029 bytes; the limit is 65536 bytes"),
        ("/v1/models/other:predict", v1("a"), 404, "Model with name other does not exist."),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(http, path, body, status, error):
    if isinstance(body, dict):
        response = http.post(path, json=body)
    elif isinstance(body, tuple):
        content_type, content = body
        response = http.post(path, content=content, headers={"content-type": content_type} if content_type else {})
    else:
        response = http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"].startswith(error), response.json()
    assert "Traceback" not in response.text


def test_a_chunked_body_is_cut_off_at_the_limit(http):
    chunks = iter([b'{"instances": [{"prompt": "', b"x" * 40_000, b"x" * 40_000, b'"}]}'])  # no Content-Length
    response = http.post(PREDICT, content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": "request body exceeds the limit of 65536 bytes"}


def test_bounded_load_no_server_errors_and_stable_memory(server, http):
    """200 mixed V1 / V2 REST / V2 gRPC requests at concurrency 8, after 40 to warm up: all OK, memory flat."""
    rng = random.Random(0)

    def request(i: int) -> tuple[list[str], dict]:
        prompts = [f"a {rng.choice(['red', 'blue', 'green'])} {rng.choice(['circle', 'square'])} {i}"] * rng.randint(
            1, 2
        )
        return prompts, {"images_per_prompt": rng.randint(1, 2), "seed": i}

    async def run(count: int, concurrency: int = 8) -> list[int]:
        slots = asyncio.Semaphore(concurrency)
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=120.0) as client,
            grpc.aio.insecure_channel(server.grpc_target) as channel,
        ):
            stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)

            async def one(i):
                prompts, options = request(i)
                async with slots:
                    if i % 3 == 2:  # gRPC: 200 for OK, else the code's name
                        try:
                            await stub.ModelInfer(grpc_request(*prompts, **options), timeout=120)
                            return 200
                        except grpc.RpcError as error:
                            return error.code().name
                    path, json = (PREDICT, v1(*prompts, **options)) if i % 3 else (INFER, v2(*prompts, **options))
                    return (await client.post(path, json=json)).status_code

            return await asyncio.gather(*(one(i) for i in range(count)))

    assert set(asyncio.run(run(40))) == {200}
    warm = server.rss_bytes()
    statuses = asyncio.run(run(200))
    grown = server.rss_bytes() - warm
    print(f"server RSS {warm / 2**20:.0f} MiB after warm-up, {grown / 2**20:+.1f} MiB after 200 requests")
    assert statuses.count(200) == 200, {s: statuses.count(s) for s in set(statuses)}
    assert grown < 64 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 200 requests"
    assert http.get("/v2/models/xmcgan/ready").status_code == 200


def test_a_model_that_cannot_load_stops_the_server(tmp_path):
    log = tmp_path / "server.log"
    process = ServerProcess("--model-uri", str(tmp_path / "missing"), log=log)
    assert process.process.wait(timeout=120) == 1
    process.stop()
    assert "could not load the model" in log.read_text() and "is not a model folder" in log.read_text()


def access_lines(log: Path) -> list[str]:
    """uvicorn's access log lines and kserve's per-request timing lines of a server log."""
    return [line for line in log.read_text().splitlines() if "uvicorn.access" in line or "kserve.trace" in line]


def test_no_line_per_request_by_default(server, http):
    assert predict(http, "a red circle")["predictions"]
    assert access_lines(server.log_path) == []


def test_access_log_on_request(tiny_model, tmp_path):
    with ServerProcess("--model-uri", str(tiny_model), "--access-log", "true", log=tmp_path / "server.log") as process:
        process.wait_ready()
        with httpx.Client(base_url=process.url, timeout=60.0) as client:
            assert predict(client, "a red circle")["predictions"]
    lines = access_lines(process.log_path)  # once stopped: kserve logs a request's time after answering it
    assert any('"POST /v1/models/xmcgan%3Apredict HTTP/1.1" 200' in line for line in lines), lines
    assert any("kserve.io.v1.models.xmcgan:predict" in line for line in lines), lines
