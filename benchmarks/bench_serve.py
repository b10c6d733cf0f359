"""Serving latency and throughput: the KServe server over HTTP against the bare generator forward.

The model is the CPU preset (cpu-64, random weights unless --model-uri names a trained one) with
the real MiniLM text encoder. The baseline, measured in the same run and the same process math
as the server (strict MKL, no oneDNN convolutions: see components/serve/predictor.py), is the
bare forward for the same batch: encode the prompts, run the generator, convert to uint8.
The server runs as `python -m components.serve` on 127.0.0.1; clients send one prompt, one image
per request (V1), from 1 and from 8 concurrent closed-loop clients; a second server with
batching off (--max-batch-images 1) shows what batching buys. Measurements alternate between
the sides over --rounds rounds, medians reported. Printed: p50/p95 latency and images/s of each,
and the ratios:

    overhead at 1 client    = server p50 latency / bare batch-1 p50 latency - 1   (target < 0.20)
    batching gain at 8      = server images/s at 8 clients / at 1 client          (target > 1)
                              and / the unbatched server at 8 clients
    efficiency at 8         = server images/s at 8 clients / bare batch-8 images/s

    python benchmarks/bench_serve.py [--requests 40] [--rounds 3] [--threads N] [--model-uri DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the server's math mode, set before MKL first runs so the baseline computes what the server does
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx
import numpy as np
import torch

from components.serve.loading import resolve_model_source
from model.config import preset
from model.generator import Generator
from model.sampling import TextToImage, image_noise, to_uint8
from model.text_encoder import TextEncoder

REPO = Path(__file__).resolve().parents[1]
PREDICT = "/v1/models/xmcgan:predict"
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star", "hexagon")


def prompt(i: int) -> str:
    return (
        f"a {COLOURS[i % 6]} {SHAPES[i // 6 % 5]} on the {('left', 'right')[i % 2]} of a {COLOURS[(i + 3) % 6]} square"
    )


def write_cpu_model(directory: Path) -> Path:
    encoder = TextEncoder()
    torch.manual_seed(0)
    model_config, _ = preset("cpu-64", text_dim=encoder.dim)
    TextToImage(text_encoder=encoder, generator=Generator(model_config)).save_pretrained(directory)
    return directory


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 95) * 1000)


def bare_forward(pipeline: TextToImage, batch: int, iterations: int) -> dict:
    """Latency of encode + generate + uint8 for `batch` prompts, and images/s."""
    prompts = [prompt(i) for i in range(batch)]
    z = torch.stack([image_noise(seed=i, index=0, z_dim=pipeline.generator.config.z_dim) for i in range(batch)])
    times = []
    with torch.no_grad():
        for _ in range(iterations):
            start = time.perf_counter()
            to_uint8(pipeline.generate(pipeline.text_encoder(prompts), z))
            times.append(time.perf_counter() - start)
    return {"latencies": times, "images_per_s": batch * iterations / sum(times)}


class Server:
    def __init__(self, model_uri: str, *, threads: int, extra: tuple[str, ...] = ()):
        sock_port = _free_port()
        self.url = f"http://127.0.0.1:{sock_port}"
        command = [sys.executable, "-m", "components.serve", "--model-uri", model_uri, "--host", "127.0.0.1"]
        command += ["--http-port", str(sock_port), *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/v2/models/xmcgan/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError("server not ready after 300 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(url: str, *, clients: int, requests: int, offset: int) -> dict:
    """`requests` one-image requests from `clients` closed-loop clients: latencies and images/s."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            body = {"instances": [{"prompt": prompt(offset + i)}], "parameters": {"seed": offset + i}}
            start = time.perf_counter()
            response = await client.post(PREDICT, json=body)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return {"latencies": latencies, "images_per_s": requests / elapsed}


def summary(runs: list[dict]) -> dict:
    """Medians over rounds of p50, p95 and images/s."""
    p50s, p95s = zip(*(percentiles(run["latencies"]) for run in runs), strict=True)
    return {
        "p50_ms": statistics.median(p50s),
        "p95_ms": statistics.median(p95s),
        "images_per_s": statistics.median(run["images_per_s"] for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per client setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads of both sides")
    parser.add_argument("--model-uri", help="model folder or models:/ URI (default: a random cpu-64 model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = False  # as the server sets it (batch_invariant_renderer)

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        model_uri = args.model_uri or str(write_cpu_model(Path(tmp) / "model"))
        pipeline = TextToImage.from_pretrained(resolve_model_source(model_uri).path)
        bare_forward(pipeline, 8, 3)  # warm up
        print(
            f"model {model_uri}: {pipeline.image_size}x{pipeline.image_size}, threads {args.threads}", file=sys.stderr
        )

        servers = {
            "batched": Server(model_uri, threads=args.threads),
            "unbatched": Server(model_uri, threads=args.threads, extra=("--max-batch-images", "1")),
        }
        results: dict[str, list[dict]] = {k: [] for k in ("bare 1", "bare 8", "server 1", "server 8", "unbatched 8")}
        try:
            for name, server in servers.items():  # warm up each server's first requests
                asyncio.run(load(server.url, clients=8, requests=16, offset=10_000 + 100 * len(name)))
            for round_ in range(args.rounds):
                offset = 1000 * round_
                results["bare 1"].append(bare_forward(pipeline, 1, args.requests))
                results["server 1"].append(
                    asyncio.run(load(servers["batched"].url, clients=1, requests=args.requests, offset=offset))
                )
                results["bare 8"].append(bare_forward(pipeline, 8, max(2, args.requests // 8)))
                results["server 8"].append(
                    asyncio.run(load(servers["batched"].url, clients=8, requests=2 * args.requests, offset=offset))
                )
                results["unbatched 8"].append(
                    asyncio.run(load(servers["unbatched"].url, clients=8, requests=2 * args.requests, offset=offset))
                )
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for server in servers.values():
                server.stop()

    table = {name: summary(runs) for name, runs in results.items()}
    print(f"{'':28s} {'p50 ms':>9s} {'p95 ms':>9s} {'images/s':>9s}")
    labels = {
        "bare 1": "bare forward, batch 1",
        "server 1": "server, 1 client",
        "bare 8": "bare forward, batch 8",
        "server 8": "server, 8 clients",
        "unbatched 8": "server unbatched, 8 clients",
    }
    for name, label in labels.items():
        row = table[name]
        print(f"{label:28s} {row['p50_ms']:9.1f} {row['p95_ms']:9.1f} {row['images_per_s']:9.1f}")
    overhead = table["server 1"]["p50_ms"] / table["bare 1"]["p50_ms"] - 1
    print(f"server overhead at 1 client (p50 latency vs bare batch 1): {overhead:+.1%}  (target < +20%)")
    print(
        "batching gain at 8 clients: "
        f"{table['server 8']['images_per_s'] / table['server 1']['images_per_s']:.2f}x images/s vs 1 client, "
        f"{table['server 8']['images_per_s'] / table['unbatched 8']['images_per_s']:.2f}x vs unbatched  (target > 1)"
    )
    print(
        "server at 8 clients vs bare batch-8 forward: "
        f"{table['server 8']['images_per_s'] / table['bare 8']['images_per_s']:.2f}x images/s"
    )


if __name__ == "__main__":
    main()
