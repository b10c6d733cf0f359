"""Serving, in process: request validation, the micro-batcher, model sources (local and a real
sqlite MLflow registry), and kserve's app with the request gate (readiness, error shapes)."""

from __future__ import annotations

import asyncio
import struct
import threading

import pytest
import torch
from kserve.errors import InvalidInput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from serve_support import free_port, write_model, write_tiny_text_encoder

from components.serve.batching import ImageJob, MicroBatcher, QueueFull
from components.serve.config import ServeConfig
from components.serve.embeddings import PromptEmbeddings, row_bytes
from components.serve.loading import parse_registry_uri, resolve_model_source
from components.serve.protocol import MAX_SEED, RequestLimits, offered_sizes, parse_v1, parse_v2
from model.text_encoder import TextEmbedding

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


def grpc_parameter(value) -> pb.InferParameter:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    return pb.InferParameter(string_param=value) if isinstance(value, str) else pb.InferParameter()


def grpc_v2(data: list[bytes], *, raw: bool = False, shape=None, parameters=None) -> pb.ModelInferRequest:
    """A V2 gRPC request for the prompt elements `data`, in contents or (raw) in raw_input_contents."""
    tensor = pb.ModelInferRequest.InferInputTensor(name="prompt", datatype="BYTES", shape=shape or [len(data)])
    if not raw:
        tensor.contents.bytes_contents.extend(data)
    request = pb.ModelInferRequest(model_name="xmcgan", inputs=[tensor])
    if raw:  # the binary BYTES tensor: each element as a 4-byte little-endian length and its bytes
        request.raw_input_contents.append(b"".join(struct.pack("<I", len(b)) + b for b in data))
    for name, value in (parameters or {}).items():
        request.parameters[name].CopyFrom(grpc_parameter(value))
    return request


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


def test_v2_over_grpc_parses_like_rest_from_contents_and_from_raw_bytes():
    rest = parse_v2(v2(["a red circle", "ein Kreis über dem Quadrat"], parameters={"seed": 5, "size": 32}), LIMITS)
    prompts = [p.encode() for p in rest.prompts]
    for raw in (False, True):
        request = InferRequest.from_grpc(grpc_v2(prompts, raw=raw, parameters={"seed": 5, "size": 32}))
        assert parse_v2(request, LIMITS) == rest


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (grpc_v2([b"\xff\xfe"]), "inputs[0].data[0]: a prompt must be UTF-8 text"),
        (grpc_v2([b"a"], parameters={"seed": None}), "parameters.seed: holds no value; set bool_param, int64_param"),
        (
            grpc_v2([b"a"], parameters={"seed": "7"}),
            "parameters.seed: must be an integer in [0, 4294967295], got string",
        ),
        (grpc_v2([b"a", b"b"], shape=[3]), "inputs[0].shape: must be [2] for 2 prompts, got [3]"),
        (
            grpc_v2([b"a", b"b"], raw=True, shape=[3]),
            "raw_input_contents[0]: is not a BYTES tensor of the input's shape",
        ),
        (grpc_v2([]), "inputs[0].data: at least one prompt is required"),
    ],
)
def test_v2_over_grpc_validation_names_the_field_as_rest_does(request_, expected):
    assert error_of(parse_v2, InferRequest.from_grpc(request_)).startswith(expected)


def test_offered_sizes_are_native_and_downscales():
    assert offered_sizes(128) == (128, 64, 32)
    assert offered_sizes(32) == (32, 16)
    assert offered_sizes(16) == (16,)


def test_config_rejects_limits_that_cannot_be_met():
    with pytest.raises(ValueError, match=r"max_images_per_request \(32\) must not exceed max_queued_images \(16\)"):
        ServeConfig(max_images_per_request=32, max_queued_images=16)
    with pytest.raises(ValueError, match="max_prompts must be at least 1"):
        ServeConfig(max_prompts=0)
    with pytest.raises(ValueError, match="grpc_port and http_port must differ, both are 9000"):
        ServeConfig(http_port=9000, grpc_port=9000)
    ServeConfig(http_port=9000, grpc_port=9000, enable_grpc=False)  # no gRPC, no clash
    with pytest.raises(ValueError, match="prompt_cache_entries and prompt_cache_mib must not be negative"):
        ServeConfig(prompt_cache_mib=-1)


# --- micro-batcher --------------------------------------------------------------------------------


class RecordingRender:
    """Results that name their job, so routing errors show; records each call's jobs."""

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[list[ImageJob]] = []
        self.gate = gate

    def __call__(self, jobs):
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append(list(jobs))
        return expected(jobs)


def expected(jobs):
    return [f"{j.prompt}/{j.seed}/{j.index}@{j.size}" for j in jobs]


def jobs_of(prompt: str, count: int, seed: int = 0) -> list[ImageJob]:
    return [ImageJob(prompt, seed, i, 64) for i in range(count)]


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
        assert images == expected(jobs)
    assert [len(call) for call in render.calls] == [4, 4, 4]  # 12 images in full batches, requests split across
    assert [job for call in render.calls for job in call] == [job for r in requests for job in r]  # arrival order


def test_a_lone_request_does_not_wait_for_company_that_is_not_coming():
    render = RecordingRender()

    async def scenario():
        batcher = MicroBatcher(render, max_batch=8, wait_s=5.0, max_queued=8)
        with batcher.expecting():
            images = await asyncio.wait_for(batcher.submit(jobs_of("a", 2)), timeout=1)
        batcher.close()
        return images

    assert len(asyncio.run(scenario())) == 2
    assert [len(call) for call in render.calls] == [2]


def test_a_batch_waits_for_requests_still_being_validated():
    render = RecordingRender()

    async def scenario():
        batcher = MicroBatcher(render, max_batch=8, wait_s=2.0, max_queued=8)

        async def request(prompt: str, validation_s: float):
            with batcher.expecting():
                await asyncio.sleep(validation_s)
                return await batcher.submit(jobs_of(prompt, 1))

        results = await asyncio.gather(request("first", 0.0), request("second", 0.05))
        batcher.close()
        return results

    assert asyncio.run(scenario()) == [expected(jobs_of("first", 1)), expected(jobs_of("second", 1))]
    assert [[job.prompt for job in call] for call in render.calls] == [["first", "second"]]


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
    assert fine == expected(jobs_of("fine", 1)) and after == expected(jobs_of("later", 1))
    assert calls == [2, 1, 1] and queued == 0


# --- prompt-embedding cache -----------------------------------------------------------------------


def fake_row(prompt: str, width: int = 4) -> TextEmbedding:
    value = float(len(prompt))
    return TextEmbedding(torch.full((3, width), value), torch.ones(3, dtype=torch.bool), torch.full((width,), value))


def test_prompt_cache_encodes_only_prompts_it_does_not_hold_and_drops_the_least_recently_used():
    encoded = []

    def encode(prompts):
        encoded.append(list(prompts))
        return [fake_row(p) for p in prompts]

    cache = PromptEmbeddings(encode, max_entries=2, max_bytes=1 << 20)
    first = cache.lookup(["a", "bb", "a"])
    assert encoded == [["a", "bb"]] and set(first) == {"a", "bb"}
    assert cache.lookup(["bb"])["bb"] is first["bb"]  # a hit is the very tensors the encoder gave
    cache.lookup(["a"])  # a is now the most recently used
    cache.lookup(["ccc"])  # full: bb goes
    cache.lookup(["a", "bb"])
    assert encoded == [["a", "bb"], ["ccc"], ["bb"]] and len(cache) == 2


def test_prompt_cache_is_bounded_in_bytes():
    size = row_bytes(fake_row("x"))
    cache = PromptEmbeddings(lambda ps: [fake_row(p) for p in ps], max_entries=100, max_bytes=3 * size)
    for i in range(10):
        cache.lookup([f"prompt {i:02d}"])
    assert len(cache) == 3 and cache.bytes == 3 * size
    nothing = PromptEmbeddings(lambda ps: [fake_row(p) for p in ps], max_entries=0, max_bytes=1 << 20)
    assert set(nothing.lookup(["a"])) == {"a"} and len(nothing) == 0 and nothing.bytes == 0


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


# --- rendering ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tiny_model):
    from components.serve.rendering import batch_invariant_math
    from model.sampling import TextToImage

    pipeline = TextToImage.from_pretrained(tiny_model)
    batch_invariant_math(pipeline)
    return pipeline


def test_row_padded_linear_keeps_the_layer_and_gives_rows_the_bits_of_a_full_batch():
    from components.serve.rendering import MIN_GEMM_ROWS, RowPaddedLinear

    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 24)
    x = torch.randn(2 * MIN_GEMM_ROWS, 48)
    before = {name: tensor.clone() for name, tensor in layer.state_dict().items()}
    reference = layer(x)
    layer.__class__ = RowPaddedLinear
    assert layer.state_dict().keys() == before.keys()
    assert all(torch.equal(tensor, before[name]) for name, tensor in layer.state_dict().items())
    assert torch.equal(layer(x), reference)  # enough rows: the plain layer
    for rows in (1, 2, 3, MIN_GEMM_ROWS - 1):
        assert torch.equal(layer(x[:rows]), layer(x[:MIN_GEMM_ROWS])[:rows])
    words = torch.randn(2, 5, 48)  # per-token inputs have rows enough and pass through
    assert torch.equal(layer(words), torch.nn.functional.linear(words, layer.weight, layer.bias))


def test_per_sample_conv_keeps_the_layer_and_gives_each_sample_its_batch_1_bits():
    from components.serve.rendering import PerSampleConv2d

    torch.manual_seed(0)
    layer = torch.nn.Conv2d(6, 4, 3, padding=1)
    x = torch.randn(5, 6, 8, 8).contiguous(memory_format=torch.channels_last)
    reference = layer(x)
    layer.__class__ = PerSampleConv2d
    out = layer(x)
    torch.testing.assert_close(out, reference)  # the same convolution, up to the algorithm's rounding
    assert all(torch.equal(out[i], layer(x[i : i + 1])[0]) for i in range(5))


def test_images_are_the_same_bytes_alone_batched_and_from_the_cache(pipeline):
    from components.serve.rendering import Invariance, Renderer, check_batch_invariance

    invariance = check_batch_invariance(pipeline, max_batch=8)
    assert invariance == Invariance(encoder=True, generator=True)
    jobs = [ImageJob(f"prompt {i % 3}", seed=i, index=i % 2, size=32 if i % 2 else 16) for i in range(7)]
    cached = Renderer(pipeline, invariance, cache_entries=16, cache_bytes=1 << 20)
    batched = cached(jobs)
    assert len(cached.embeddings) == 3 and len(set(batched)) == 7
    assert cached(jobs) == batched  # every prompt a cache hit now
    uncached = Renderer(pipeline, invariance, cache_entries=0, cache_bytes=0)
    assert [uncached([job])[0] for job in jobs] == batched  # each alone
    one_at_a_time = Renderer(pipeline, Invariance(encoder=False, generator=False), cache_entries=0, cache_bytes=0)
    assert one_at_a_time(jobs) == batched


# --- the gRPC edge, in process --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grpc_edge(tiny_model):
    """The gRPC edge on 127.0.0.1 serving a loaded predictor of its own, from a loop in a thread."""
    import grpc
    import kserve
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

    from components.serve.grpc_edge import build_grpc_server
    from components.serve.predictor import XMCGANPredictor

    config = ServeConfig(
        model_uri=str(tiny_model), host="127.0.0.1", http_port=0, grpc_port=free_port(), max_body_bytes=4096
    )
    model = XMCGANPredictor(config)
    model_server = kserve.ModelServer(http_port=0, enable_grpc=False, workers=1)
    model_server.register_model(model)
    model.load()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-test-loop", daemon=True)
    thread.start()

    async def start():  # grpc.aio binds a server to the loop it is created in
        server = build_grpc_server(config, model_server.dataplane, model_server.model_repository_extension)
        await server.start()
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    channel = grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}")
    yield grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel), model
    channel.close()
    asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(30)
    model.stop()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


def grpc_error(call, request):
    import grpc

    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def test_grpc_answers_with_binary_pngs_of_the_requested_size(grpc_edge):
    stub, _ = grpc_edge
    request = grpc_v2([b"a red circle", b"a blue square"], parameters={"seed": 3, "images_per_prompt": 2, "size": 16})
    request.id = "req-1"
    response = stub.ModelInfer(request, timeout=30)
    (image,) = response.outputs
    assert (response.id, response.model_name, image.name, image.datatype, list(image.shape)) == (
        "req-1",
        "xmcgan",
        "image",
        "BYTES",
        [2, 2],
    )
    assert image.parameters["content_type"].string_param == "image/png" and "encoding" not in image.parameters
    pngs = list(image.contents.bytes_contents)
    assert all(png.startswith(b"\x89PNG") for png in pngs) and len(set(pngs)) == 4
    assert {name: p.int64_param for name, p in response.parameters.items()} == {
        "seed": 3,
        "size": 16,
        "images_per_prompt": 2,
    }


def test_grpc_errors_are_status_codes_with_the_rest_messages(grpc_edge, monkeypatch):
    import grpc

    stub, model = grpc_edge
    invalid = grpc_error(stub.ModelInfer, grpc_v2([b"a"], parameters={"seed": -1}))
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.details() == "parameters.seed: must be an integer in [0, 4294967295], got -1"
    unknown = grpc_error(stub.ModelInfer, pb.ModelInferRequest(model_name="nope"))
    assert (unknown.code(), unknown.details()) == (grpc.StatusCode.NOT_FOUND, "Model with name nope does not exist.")
    for call, request in (
        (stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="xmcgan")),
        (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="xmcgan")),
    ):
        denied = grpc_error(call, request)
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and "repository API is disabled" in denied.details()
    too_big = grpc_error(stub.ModelInfer, grpc_v2([b"x" * 5000]))
    assert too_big.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    async def refuse(jobs):
        raise QueueFull("64 images are queued; the limit is 64")

    monkeypatch.setattr(model.batcher, "submit", refuse)
    busy = grpc_error(stub.ModelInfer, grpc_v2([b"a"]))
    assert busy.code() == grpc.StatusCode.UNAVAILABLE
    assert busy.details() == "server busy: 64 images are queued; the limit is 64; retry after 1 s"
    assert ("retry-after", "1") in tuple(busy.trailing_metadata())


def test_grpc_server_errors_hide_their_details(grpc_edge, monkeypatch):
    import grpc

    stub, model = grpc_edge

    def explode(jobs):
        raise RuntimeError("secret path /var/lib/model exploded")

    monkeypatch.setattr(model.batcher, "render", explode)
    failed = grpc_error(stub.ModelInfer, grpc_v2([b"a red circle"]))
    assert failed.code() == grpc.StatusCode.INTERNAL
    assert failed.details().startswith("internal server error (reference ") and "secret" not in failed.details()


def test_grpc_refuses_inference_before_the_model_is_ready(grpc_edge):
    import grpc

    stub, model = grpc_edge
    model.ready = False  # as while loading: kserve's data plane would call load() again, in the event loop
    try:
        refused = grpc_error(stub.ModelInfer, grpc_v2([b"a"]))
        assert (refused.code(), refused.details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "Model with name xmcgan is not ready.",
        )
        assert not stub.ModelReady(pb.ModelReadyRequest(name="xmcgan"), timeout=30).ready
    finally:
        model.ready = True


# --- kserve's app with the gate, in process ---------------------------------------------------------


@pytest.fixture(scope="module")
def app_and_model(tiny_model):
    """kserve's (module-global) app serving the tiny model, not yet loaded."""
    from components.serve.predictor import XMCGANPredictor
    from components.serve.run import build_app

    config = ServeConfig(model_uri=str(tiny_model), host="127.0.0.1", http_port=0, max_body_bytes=4096)
    model = XMCGANPredictor(config)
    servers = build_app(config, model)
    assert (servers.uvicorn_config.host, servers.uvicorn_config.limit_concurrency) == (
        "127.0.0.1",
        config.max_connections,
    )
    yield servers.app, model
    model.stop()


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


def test_every_torch_call_of_the_server_runs_on_its_one_generator_thread(tiny_model, monkeypatch):
    """Loading, the batch-invariance check and rendering share one thread (a second thread running
    torch gets its own OpenMP team, and the two slow each other down)."""
    from components.serve import predictor as predictor_module
    from components.serve.predictor import XMCGANPredictor

    threads = {}
    check, render = predictor_module.check_batch_invariance, predictor_module.Renderer.images

    def recording(name, function):
        def wrapped(*args, **kwargs):
            threads[name] = threading.get_ident()
            return function(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(predictor_module, "check_batch_invariance", recording("load", check))
    monkeypatch.setattr(predictor_module.Renderer, "images", recording("render", render))
    model = XMCGANPredictor(ServeConfig(model_uri=str(tiny_model), host="127.0.0.1", http_port=0))
    try:
        model.load()
        asyncio.run(model.batcher.submit([ImageJob("a red circle", 0, 0, 16)]))
    finally:
        model.stop()
    assert threads["load"] == threads["render"] != threading.get_ident()
