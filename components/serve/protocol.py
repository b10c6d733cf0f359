"""The request and response formats of both inference protocols, and the validation of requests.

V1 (`POST /v1/models/NAME:predict`):

    {"instances": [{"prompt": "a red circle on the left"}, ...],
     "parameters": {"images_per_prompt": 2, "seed": 7, "size": 32}}        # parameters optional
 -> {"predictions": [{"prompt": "...", "images": ["<base64 PNG>", ...]}, ...],
     "model_name": "xmcgan", "model_version": "3", "seed": 7, "size": 32}

V2 / Open Inference Protocol (`POST /v2/models/NAME/infer`):

    {"id": "42", "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [2], "data": ["...", "..."]}],
     "parameters": {"images_per_prompt": 2, "seed": 7, "size": 32}}
 -> {"id": "42", "model_name": "xmcgan", "model_version": "3", "parameters": {"seed": 7, "size": 32, ...},
     "outputs": [{"name": "image", "datatype": "BYTES", "shape": [2, 2], "data": ["<base64 PNG>", ...]}]}

V2 over gRPC (`inference.GRPCInferenceService/ModelInfer`) carries the same tensors: prompts as
BYTES elements (UTF-8, in `contents.bytes_contents` or `raw_input_contents`), the same parameters,
and each image as the PNG file itself (no base64: gRPC BYTES are binary).

Image j of prompt p is generated from (prompt p, seed, j): the same prompt and seed give the same
images whatever else is in the request or the batch. Without a seed the server draws one and
returns it, so any response can be reproduced. Errors raise `InvalidInput` (HTTP 400 or gRPC
INVALID_ARGUMENT, with the same message: "<field>: <what is wrong>").
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

MAX_SEED = 2**32 - 1
OPTIONS = ("images_per_prompt", "seed", "size")
V1_FIELDS = ("instances", "parameters")
V1_INSTANCE_FIELDS = ("prompt",)
# The V2 envelope: kserve's request model drops unknown fields silently, so they are checked on
# the raw JSON (see http_edge.py) against these.
V2_FIELDS = ("id", "parameters", "inputs", "outputs")
V2_INPUT_FIELDS = ("name", "shape", "datatype", "parameters", "data")
V2_OUTPUT_FIELDS = ("name", "parameters")
PROMPT_INPUT = "prompt"
IMAGE_OUTPUT = "image"


@dataclass(frozen=True)
class RequestLimits:
    """What a request may ask for; `sizes` are the output sizes offered, the native size first."""

    max_prompts: int
    max_images_per_prompt: int
    max_images_per_request: int
    max_prompt_chars: int
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class GenerationRequest:
    prompts: tuple[str, ...]
    images_per_prompt: int
    seed: int
    size: int

    @property
    def image_count(self) -> int:
        return len(self.prompts) * self.images_per_prompt


@dataclass(frozen=True)
class ModelIdentity:
    """What the response names as its producer: the endpoint's model name and the model's version."""

    name: str
    version: str


def offered_sizes(native: int, *, smallest: int = 16) -> tuple[int, ...]:
    """The native size and its downscales by 2 and 4 that stay at least `smallest` pixels."""
    return tuple(s for s in (native, native // 2, native // 4) if s >= smallest and native % s == 0) or (native,)


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def invalid(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{where}: {problem}" if where else problem)


def check_fields(obj: object, allowed: Sequence[str], where: str) -> Mapping:
    """`obj` as a JSON object that holds no field outside `allowed`."""
    if not isinstance(obj, Mapping):
        raise invalid(where or "body", f"must be a JSON object, got {json_type(obj)}")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        prefix = f"{where}." if where else ""
        raise invalid(
            ", ".join(prefix + str(name) for name in unknown),
            f"unknown field{'s' if len(unknown) > 1 else ''}; allowed: {', '.join(allowed)}",
        )
    return obj


def check_prompt(value: object, where: str, *, max_chars: int) -> str:
    if not isinstance(value, str):
        raise invalid(where, f"a prompt must be a string, got {json_type(value)}")
    if not value.strip():
        raise invalid(where, "a prompt must not be empty or whitespace")
    if len(value) > max_chars:
        raise invalid(where, f"the prompt is {len(value)} characters long; the limit is {max_chars}")
    return value


def check_prompt_count(count: int, where: str, limits: RequestLimits) -> None:
    if count == 0:
        raise invalid(where, "at least one prompt is required")
    if count > limits.max_prompts:
        raise invalid(where, f"{count} prompts; the limit is {limits.max_prompts} per request")


def _integer(value: object, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(where, f"must be an integer in [{low}, {high}], got {json_type(value)}")
    if not low <= value <= high:
        raise invalid(where, f"must be an integer in [{low}, {high}], got {value}")
    return value


def parse_options(options: object, prompts: tuple[str, ...], limits: RequestLimits, where: str) -> GenerationRequest:
    """The request's options (images_per_prompt, seed, size) checked against `limits`; absent ones defaulted."""
    options = check_fields({} if options is None else options, OPTIONS, where)
    images_per_prompt = _integer(
        options.get("images_per_prompt", 1), f"{where}.images_per_prompt", 1, limits.max_images_per_prompt
    )
    if len(prompts) * images_per_prompt > limits.max_images_per_request:
        raise invalid(
            f"{where}.images_per_prompt",
            f"{len(prompts)} prompts x {images_per_prompt} images = {len(prompts) * images_per_prompt} images; "
            f"the limit is {limits.max_images_per_request} per request",
        )
    seed = options.get("seed")
    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else _integer(seed, f"{where}.seed", 0, MAX_SEED)
    size = options.get("size", limits.sizes[0])
    if not isinstance(size, int) or isinstance(size, bool) or size not in limits.sizes:
        raise invalid(f"{where}.size", f"must be one of {list(limits.sizes)}, got {size!r}")
    return GenerationRequest(prompts=prompts, images_per_prompt=images_per_prompt, seed=seed, size=size)


def parse_v1(body: object, limits: RequestLimits) -> GenerationRequest:
    body = check_fields(body, V1_FIELDS, "")
    if "instances" not in body:
        raise invalid("instances", 'required: a list of {"prompt": "..."} objects')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise invalid("instances", f"must be an array, got {json_type(instances)}")
    check_prompt_count(len(instances), "instances", limits)
    prompts = []
    for i, instance in enumerate(instances):
        instance = check_fields(instance, V1_INSTANCE_FIELDS, f"instances[{i}]")
        if "prompt" not in instance:
            raise invalid(f"instances[{i}].prompt", "required")
        prompts.append(check_prompt(instance["prompt"], f"instances[{i}].prompt", max_chars=limits.max_prompt_chars))
    return parse_options(body.get("parameters"), tuple(prompts), limits, "parameters")


def grpc_parameters(parameters: Mapping) -> dict:
    """gRPC InferParameters as plain values, like the JSON of REST."""
    plain = {}
    for name, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is None:
            raise invalid(f"parameters.{name}", "holds no value; set bool_param, int64_param or string_param")
        plain[name] = getattr(parameter, choice)
    return plain


def prompt_elements(prompt_input, *, from_grpc: bool) -> object:
    """The prompt tensor's elements: JSON strings over REST; over gRPC UTF-8 bytes, from
    `contents.bytes_contents` or, when that is empty, from `raw_input_contents`."""
    data = prompt_input.data
    if not from_grpc:
        return data
    if not data:
        try:
            data = prompt_input.as_numpy().reshape(-1).tolist()
        except ValueError:
            raise invalid("raw_input_contents[0]", "is not a BYTES tensor of the input's shape") from None
    elements = []
    for i, value in enumerate(data):
        try:
            elements.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            raise invalid(f"inputs[0].data[{i}]", "a prompt must be UTF-8 text") from None
    return elements


def parse_v2(request: InferRequest, limits: RequestLimits) -> GenerationRequest:
    names = [infer_input.name for infer_input in request.inputs]
    for i, name in enumerate(names):
        if name != PROMPT_INPUT:
            raise invalid(f"inputs[{i}].name", f"unknown input {name!r}; the only input is {PROMPT_INPUT!r}")
    if len(names) != 1:
        raise invalid("inputs", f"exactly one input named {PROMPT_INPUT!r} is required, got {len(names)}")
    prompt_input = request.inputs[0]
    if prompt_input.datatype != "BYTES":
        raise invalid("inputs[0].datatype", f"must be BYTES, got {prompt_input.datatype!r}")
    if prompt_input.parameters:
        raise invalid("inputs[0].parameters", f"unknown parameters {sorted(prompt_input.parameters)}; none allowed")
    data = prompt_elements(prompt_input, from_grpc=request.from_grpc)
    if not isinstance(data, list):
        raise invalid("inputs[0].data", "must be a flat array of prompt strings")
    check_prompt_count(len(data), "inputs[0].data", limits)
    if list(prompt_input.shape) != [len(data)]:
        raise invalid("inputs[0].shape", f"must be [{len(data)}] for {len(data)} prompts, got {prompt_input.shape}")
    prompts = tuple(
        check_prompt(value, f"inputs[0].data[{i}]", max_chars=limits.max_prompt_chars) for i, value in enumerate(data)
    )
    for i, output in enumerate(request.request_outputs or []):
        if output.name != IMAGE_OUTPUT:
            raise invalid(f"outputs[{i}].name", f"unknown output {output.name!r}; the only output is {IMAGE_OUTPUT!r}")
        if output.parameters:
            raise invalid(f"outputs[{i}].parameters", "no output parameters are supported")
    parameters = grpc_parameters(request.parameters) if request.from_grpc else request.parameters
    return parse_options(parameters, prompts, limits, "parameters")


def check_v2_envelope(body: object) -> None:
    """Reject fields the V2 request schema does not define, before kserve's request model drops them."""
    body = check_fields(body, V2_FIELDS, "")
    for key, allowed in (("inputs", V2_INPUT_FIELDS), ("outputs", V2_OUTPUT_FIELDS)):
        if isinstance(body.get(key), list):
            for i, item in enumerate(body[key]):
                check_fields(item, allowed, f"{key}[{i}]")


def to_base64(pngs: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(png).decode("ascii") for png in pngs]


def v1_response(request: GenerationRequest, pngs: Sequence[bytes], model: ModelIdentity) -> dict:
    """`pngs` in prompt-major order: images_per_prompt images of prompt 0, then of prompt 1, ..."""
    encoded, k = to_base64(pngs), request.images_per_prompt
    predictions = [
        {"prompt": prompt, "images": encoded[i * k : (i + 1) * k]} for i, prompt in enumerate(request.prompts)
    ]
    return {
        "predictions": predictions,
        "model_name": model.name,
        "model_version": model.version,
        "seed": request.seed,
        "size": request.size,
    }


def v2_response(
    request: GenerationRequest, pngs: Sequence[bytes], model: ModelIdentity, *, request_id: str | None, binary: bool
) -> InferResponse:
    """One BYTES output of shape (prompts, images_per_prompt), row-major: each a base64 PNG in JSON,
    the PNG itself when `binary` (gRPC)."""
    image = InferOutput(
        name=IMAGE_OUTPUT,
        shape=[len(request.prompts), request.images_per_prompt],
        datatype="BYTES",
        data=list(pngs) if binary else to_base64(pngs),
        parameters={"content_type": "image/png"} | ({} if binary else {"encoding": "base64"}),
    )
    return InferResponse(
        response_id=request_id or str(uuid.uuid4()),  # kserve requires an id; clients may send none
        model_name=model.name,
        model_version=model.version,
        infer_outputs=[image],
        parameters={"seed": request.seed, "size": request.size, "images_per_prompt": request.images_per_prompt},
    )
