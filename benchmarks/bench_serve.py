"""Serving latency and throughput on V1 REST, V2 REST and V2 gRPC against the bare forward, cache hit and miss.

The model is the demo preset (DEMO_PRESET, random weights unless --model-uri names a trained one) with
the real MiniLM text encoder. The servers run as `python -m components.serve` on 127.0.0.1: one
as configured by default, one with batching off (--max-batch-images 1). Clients are closed-loop
threads with a keep-alive connection each (http.client, a gRPC channel each), one image per
request, at 1, 8 and 32 clients. A cache miss is a prompt never sent before; a hit is one of 8
prompts sent just before the run. The baseline, measured in the same run and process math as the
server (rendering.batch_invariant_math, strict MKL), is the bare forward of the same work:

    bare miss   text encoding + generator + uint8 + PNG          (what a cache-miss request does)
    bare hit    generator + uint8 + PNG, embeddings precomputed  (what a cache-hit request does)

at batch 1 (latency) and batch 8, the server's largest batch (throughput), all on this process's main
thread, as the server runs all its torch work on one thread (a second thread running torch gets an
OpenMP team of its own and the two teams slow each other down). The sides alternate
over --rounds rounds; medians over rounds are printed, with

    at 1 client:       server p50 / bare batch-1 p50 - 1            (target: at most +20 %)
    at 8, 32 clients:  server images/s / bare batch-8 images/s
    batching:          images/s at 8 clients / at 1 client, and / the unbatched server at 8

and a breakdown of one request at 1 client from the server's own stage timings on /metrics
(queue, text, generate, png) against the client's round trip, beside the round trip of a
liveness call (the transport's floor).

    python benchmarks/bench_serve.py [--requests 32] [--rounds 5] [--threads N] [--model-uri DIR]
        [--server-args '--access-log true'] [--server-env GOMP_SPINCOUNT=30000] [--json OUT]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# the server's math mode, set before MKL first runs so the baseline computes what the server does
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# both sides take their intra-op threads from the same environment, read when OpenMP and MKL
# start (a count set later does not reach every thread and library alike): --threads N, read here
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = (
    sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else str(os.cpu_count() or 1)
)

import grpc
import numpy as np
import torch
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.infer_type import InferInput, InferRequest

from components.serve.loading import resolve_model_source
from components.serve.rendering import batch_invariant_math, encode_png
from model.config import DEMO_PRESET, preset
from model.generator import Generator
from model.sampling import TextToImage
from model.text_encoder import TextEncoder

REPO = Path(__file__).resolve().parents[1]
THREADS = int(os.environ["OMP_NUM_THREADS"])
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star", "hexagon")
PROTOCOLS = ("V1 REST", "V2 REST", "V2 gRPC")
CLIENTS = (1, 8, 32)
BATCH = 8  # the server's default max_batch_images: the bare throughput baseline
HOT = [f"a {COLOURS[i % 6]} {SHAPES[i % 5]} above a {COLOURS[(i + 2) % 6]} square" for i in range(8)]
STAGES = ("queue", "text", "generate", "png")
SLICES = 4  # the 1-client measurements of a round, in this many turns
TIMEOUT_S = 120  # per request: a stuck server fails the run instead of hanging it


def prompt(tag: str, i: int) -> str:
    """A prompt never sent before in this run (a cache miss)."""
    return f"a {COLOURS[i % 6]} {SHAPES[i // 6 % 5]} on the {('left', 'right')[i % 2]} of a square, take {tag}-{i}"


def write_cpu_model(directory: Path) -> Path:
    encoder = TextEncoder()
    torch.manual_seed(0)
    model_config, _ = preset(DEMO_PRESET, text_dim=encoder.dim)
    TextToImage(text_encoder=encoder, generator=Generator(model_config)).save_pretrained(directory)
    return directory


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 95) * 1000)


# --- the bare forward -------------------------------------------------------------------------------


class Bare:
    def __init__(self, pipeline: TextToImage):
        self.pipeline = pipeline
        self.size = pipeline.image_size
        self.hot = pipeline.text_encoder(HOT[:BATCH])

    @torch.no_grad()
    def once(self, prompts: list[str] | None, seeds: range) -> None:
        """One forward: encode `prompts` (None: the precomputed hot embeddings), generate, uint8, PNGs."""
        text = self.pipeline.text_encoder(prompts) if prompts else self.hot[: len(seeds)]
        for pixels in self.pipeline.images(text, [(seed, 0) for seed in seeds]):
            encode_png(pixels, self.size)

    def run(self, *, batch: int, miss: bool, iterations: int, tag: str):
        times = []
        for i in range(iterations):
            prompts = [prompt(f"bare{tag}", i * batch + j) for j in range(batch)] if miss else None
            start = time.perf_counter()
            self.once(prompts, range(i * batch, (i + 1) * batch))
            times.append(time.perf_counter() - start)
        return {"latencies": times, "images_per_s": batch * iterations / sum(times)}


# --- the servers and their clients ---------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, model_uri: str, *, threads: int, extra: tuple[str, ...] = (), environment: dict | None = None):
        self.http_port, self.grpc_port = free_port(), free_port()
        command = [sys.executable, "-m", "components.serve", "--model-uri", model_uri, "--host", "127.0.0.1"]
        command += ["--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port), *extra]
        env = {**os.environ, **(environment or {}), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if self.get("/v2/models/xmcgan/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError("server not ready after 300 s")

    def get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=TIMEOUT_S)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stages(self) -> dict[str, tuple[float, float]]:
        """(seconds, count) per stage from the server's histograms."""
        text = self.get("/metrics")[1].decode()
        found = {}
        for stage in STAGES:
            sums = re.search(rf'^xmcgan_serve_stage_seconds_sum{{stage="{stage}"}} (\S+)$', text, re.M)
            counts = re.search(rf'^xmcgan_serve_stage_seconds_count{{stage="{stage}"}} (\S+)$', text, re.M)
            found[stage] = (float(sums.group(1)), float(counts.group(1))) if sums and counts else (0.0, 0.0)
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


class RestClient:
    def __init__(self, server: Server, protocol: str):
        self.connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=TIMEOUT_S)
        self.path = "/v1/models/xmcgan:predict" if protocol == "V1 REST" else "/v2/models/xmcgan/infer"
        self.v1 = protocol == "V1 REST"

    def infer(self, text: str, seed: int) -> None:
        if self.v1:
            body = {"instances": [{"prompt": text}], "parameters": {"seed": seed}}
        else:
            inputs = [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": [text]}]
            body = {"inputs": inputs, "parameters": {"seed": seed}}
        self.connection.request("POST", self.path, json.dumps(body), {"content-type": "application/json"})
        response = self.connection.getresponse()
        content = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {content[:200]!r}")

    def live(self) -> None:
        self.connection.request("GET", "/v2/health/live")
        self.connection.getresponse().read()

    def close(self) -> None:
        self.connection.close()


class GrpcClient:
    def __init__(self, server: Server, protocol: str):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        self.stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    def infer(self, text: str, seed: int) -> None:
        tensor = InferInput(name="prompt", shape=[1], datatype="BYTES", data=[text])
        request = InferRequest(model_name="xmcgan", infer_inputs=[tensor], parameters={"seed": seed}).to_grpc()
        self.stub.ModelInfer(request, timeout=TIMEOUT_S)

    def live(self) -> None:
        self.stub.ServerLive(pb.ServerLiveRequest(), timeout=TIMEOUT_S)

    def close(self) -> None:
        self.channel.close()


def client_for(server: Server, protocol: str):
    return GrpcClient(server, protocol) if protocol == "V2 gRPC" else RestClient(server, protocol)


def warm_hot_prompts(server: Server, protocol: str) -> None:
    """Send every hot prompt, so each is held (misses since may have pushed some out)."""
    client = client_for(server, protocol)
    for i, text in enumerate(HOT):
        client.infer(text, i)
    client.close()


def load(server: Server, protocol: str, *, clients: int, requests: int, miss: bool, tag: str, warm=True) -> dict:
    """`requests` one-image requests from `clients` closed-loop clients: latencies and images/s."""
    per_client = max(2, -(-requests // clients))
    if warm and not miss:
        warm_hot_prompts(server, protocol)
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client_loop(c: int) -> None:
        client = client_for(server, protocol)
        client.live()  # connect before the clock starts
        ready.wait()
        mine = []
        for i in range(per_client):
            n = c * per_client + i
            text = prompt(f"{tag}-{clients}", n) if miss else HOT[n % len(HOT)]
            start = time.perf_counter()
            client.infer(text, n)
            mine.append(time.perf_counter() - start)
        client.close()
        with lock:
            latencies.extend(mine)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client_loop, c) for c in range(clients)]
        ready.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - start
    return {"latencies": latencies, "images_per_s": len(latencies) / elapsed}


def floor(server: Server, protocol: str, count: int = 50) -> float:
    """p50 ms of a liveness round trip: the transport and client, no model."""
    client = client_for(server, protocol)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        client.live()
        times.append(time.perf_counter() - start)
    client.close()
    return percentiles(times[5:])[0]


def breakdown(server: Server, protocol: str, *, miss: bool, requests: int, tag: str) -> dict:
    """Mean ms per request at 1 client (one request per batch): the server's stages and the round trip."""
    if not miss:
        warm_hot_prompts(server, protocol)
    before = server.stages()
    run = load(server, protocol, clients=1, requests=requests, miss=miss, tag=tag, warm=False)
    after = server.stages()
    parts = {s: (after[s][0] - before[s][0]) / (after[s][1] - before[s][1]) * 1000 for s in STAGES}
    return {**parts, "round trip": statistics.mean(run["latencies"]) * 1000}


# --- the run ----------------------------------------------------------------------------------------------


def joined(runs: list[dict]) -> dict:
    """Closed-loop runs of one client taken in slices, as one run."""
    latencies = [t for run in runs for t in run["latencies"]]
    return {"latencies": latencies, "images_per_s": len(latencies) / sum(latencies)}


def summary(runs: list[dict]) -> dict:
    """Medians over rounds of p50, p95 and images/s."""
    p50s, p95s = zip(*(percentiles(run["latencies"]) for run in runs), strict=True)
    return {
        "p50_ms": statistics.median(p50s),
        "p95_ms": statistics.median(p95s),
        "images_per_s": statistics.median(run["images_per_s"] for run in runs),
    }


def measure(args, model_uri: str) -> tuple[dict, dict]:
    path = resolve_model_source(model_uri).path
    pipeline = TextToImage.from_pretrained(path)
    batch_invariant_math(pipeline)  # the server's arithmetic (rendering.py)
    bare, plain = Bare(pipeline), Bare(TextToImage.from_pretrained(path))
    print(f"model {model_uri}: {pipeline.image_size}px, threads {args.threads}", file=sys.stderr)
    results: dict[str, list[dict]] = {}
    parts: dict[str, list[dict]] = {}

    def record(name: str, run: dict) -> None:
        results.setdefault(name, []).append(run)

    options = tuple(shlex.split(args.server_args))
    environment = dict(item.split("=", 1) for item in args.server_env)
    servers = {
        "batched": Server(model_uri, threads=args.threads, extra=options, environment=environment),
        "unbatched": Server(
            model_uri, threads=args.threads, extra=(*options, "--max-batch-images", "1"), environment=environment
        ),
    }
    server = servers["batched"]
    n = args.requests
    try:
        bare.run(batch=BATCH, miss=True, iterations=3, tag="warm")
        plain.run(batch=BATCH, miss=True, iterations=3, tag="warm")
        for name, each in servers.items():  # first requests of each server and protocol
            for protocol in PROTOCOLS:
                load(each, protocol, clients=8, requests=16, miss=True, tag=f"warm-{name}-{protocol}")
        for r in range(args.rounds):
            # each round measures every setting once; the 1-client ones in slices of a few requests
            # taken in turn with their bare baseline, so a change in the machine's load meets all sides
            for miss, kind in ((True, "miss"), (False, "hit")):
                slices: dict[str, list[dict]] = {}
                for c in range(SLICES):
                    tag = f"{r}-{c}"
                    slices.setdefault(f"bare {kind} 1", []).append(
                        bare.run(batch=1, miss=miss, iterations=n // SLICES, tag=tag)
                    )
                    for protocol in PROTOCOLS:
                        run = load(server, protocol, clients=1, requests=n // SLICES, miss=miss, tag=f"{tag}{protocol}")
                        slices.setdefault(f"{protocol} {kind} 1", []).append(run)
                for name, runs in slices.items():
                    record(name, joined(runs))
            for kind in ("miss", "hit"):
                parts.setdefault(kind, []).append(
                    breakdown(server, "V1 REST", miss=kind == "miss", requests=n, tag=f"b{r}")
                )
            for miss, kind in ((True, "miss"), (False, "hit")):
                record(f"bare {kind} {BATCH}", bare.run(batch=BATCH, miss=miss, iterations=max(2, n // 4), tag=f"{r}"))
                for protocol in PROTOCOLS:
                    for clients in CLIENTS[1:]:
                        tag = f"{r}-{protocol}-{kind}-{clients}"
                        run = load(server, protocol, clients=clients, requests=2 * n, miss=miss, tag=tag)
                        record(f"{protocol} {kind} {clients}", run)
            record(f"bare hit {BATCH} plain", plain.run(batch=BATCH, miss=False, iterations=max(2, n // 4), tag=""))
            unbatched = load(servers["unbatched"], "V1 REST", clients=8, requests=2 * n, miss=True, tag=f"u{r}")
            record("unbatched miss 8", unbatched)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        floors = {protocol: floor(server, protocol) for protocol in ("V1 REST", "V2 gRPC")}
    finally:
        for each in servers.values():
            each.stop()
    table = {name: summary(runs) for name, runs in results.items()}
    mean_parts = {kind: {k: statistics.median(p[k] for p in runs) for k in runs[0]} for kind, runs in parts.items()}
    return table, {"breakdown": mean_parts, "floors_ms": floors}


def report(table: dict, extra: dict) -> None:
    print(f"{'':34s} {'p50 ms':>8s} {'p95 ms':>8s} {'images/s':>9s}   vs bare")
    for kind in ("miss", "hit"):
        for name in (f"bare {kind} 1", f"bare {kind} {BATCH}"):
            row = table[name]
            print(f"{name + ' (batch)':34s} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['images_per_s']:9.1f}")
    row = table[f"bare hit {BATCH} plain"]
    label = f"bare hit {BATCH}, torch's own math"
    print(f"{label:34s} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['images_per_s']:9.1f}")
    for kind in ("miss", "hit"):
        for protocol in PROTOCOLS:
            for clients in CLIENTS:
                row = table[f"{protocol} {kind} {clients}"]
                if clients == 1:
                    ratio = f"{row['p50_ms'] / table[f'bare {kind} 1']['p50_ms'] - 1:+.1%} p50"
                else:
                    ratio = f"{row['images_per_s'] / table[f'bare {kind} {BATCH}']['images_per_s']:.2f}x images/s"
                label = f"{protocol} {kind}, {clients} client{'s' if clients > 1 else ''}"
                print(f"{label:34s} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['images_per_s']:9.1f}   {ratio}")
    row = table["unbatched miss 8"]
    print(f"{'V1 REST miss, 8, batching off':34s} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['images_per_s']:9.1f}")
    print("targets at 1 client: a miss within +20 % of the bare miss, a hit within +20 % of the bare hit")
    one, eight = table["V1 REST miss 1"]["images_per_s"], table["V1 REST miss 8"]["images_per_s"]
    unbatched = table["unbatched miss 8"]["images_per_s"]
    print(
        f"batching at 8 clients (V1 REST, miss): {eight / one:.2f}x one client, {eight / unbatched:.2f}x batching off"
    )
    invariant, own = table[f"bare hit {BATCH}"]["images_per_s"], table[f"bare hit {BATCH} plain"]["images_per_s"]
    print(
        f"batch invariance (per-sample convolutions): {invariant / own:.2f}x the bare hit images/s of torch's own math"
    )
    floors = extra["floors_ms"]
    print(
        f"transport floor (liveness round trip p50): REST {floors['V1 REST']:.2f} ms, gRPC {floors['V2 gRPC']:.2f} ms"
    )
    for kind, parts in extra["breakdown"].items():
        inside = sum(parts[s] for s in STAGES)
        stages = ", ".join(f"{s} {parts[s]:.2f}" for s in STAGES)
        print(
            f"one V1 REST request at 1 client, cache {kind} (mean ms): round trip {parts['round trip']:.2f} = "
            f"{stages}, HTTP + kserve + hand-offs {parts['round trip'] - inside:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=32, help="requests per setting and round at 1 client (2x beyond)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=THREADS, help="intra-op threads of both sides (default: the CPUs)"
    )
    parser.add_argument("--model-uri", help="model folder or models:/ URI (default: a random model of the demo preset)")
    parser.add_argument(
        "--server-args", default="", help="more options of both servers, e.g. '--access-log true' (a line a request)"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE",
        help="an environment variable of the servers only (not of the baseline), e.g. OMP_WAIT_POLICY=PASSIVE",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if bad := [item for item in args.server_env if "=" not in item]:
        parser.error(f"--server-env expects NAME=VALUE, got {bad}")
    if args.threads != THREADS:
        parser.error("give the thread count as two words, --threads N (it is read before torch starts)")
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        model_uri = args.model_uri or str(write_cpu_model(Path(tmp) / "model"))
        table, extra = measure(args, model_uri)

    load_after = os.getloadavg()
    print(
        f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; {os.cpu_count()} CPUs"
    )
    if args.server_env:
        print(f"servers' environment: {' '.join(args.server_env)}")
    report(table, extra)
    if args.json:
        args.json.write_text(json.dumps({"table": table, **extra, "load": [load_before, load_after]}, indent=1))


if __name__ == "__main__":
    main()
