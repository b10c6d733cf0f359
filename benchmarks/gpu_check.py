"""Training speed of the authors' configuration on a CUDA device, as one short prepared check.

With CUDA: xmcgan-128 (model.config PRESETS, the authors' COCO model) at its recipe's batch, 56,
in the training loop's bf16 autocast, timed over `--iterations` iterations after `--warmup`,
eager and with torch.compile (G and D compiled inside the loss, as `train` does); then, with 2 or
more GPUs, the same global batch over 2 processes on NCCL, one GPU each, with the training loop's
gradient all-reduce (model.training.average_gradients: the loop's own synchronisation, not a DDP
wrapper, see model/training.py). Each prints images/s, peak memory
(torch.cuda.max_memory_allocated over the timed iterations) and FLOP utilisation: the FLOPs of an
iteration (torch.utils.flop_counter, counted once eagerly: compiling changes the kernels, not the
arithmetic) over its median time, against the device's peak, a bf16 matmul measured in the same run.

Without CUDA: the demo preset (model.config.DEMO_PRESET) in fp32 at its own batch for a few
iterations, against an fp32 matmul; torch.compile only with `--compile on`; no NCCL. It prints what
it skipped.

An iteration is the training loop's, through benchmarks/bench_model.py's TrainingBench (which
steps model.training.phase_step): `d_steps_per_g_step` D steps (2), each on a fresh batch, one G
step, the EMA update. Text embeddings are random tensors of the encoder's width.

    python benchmarks/gpu_check.py [--device auto|cuda|cpu] [--iterations N] [--warmup N]
                                   [--compile auto|on|off] [--preset NAME] [--batch B]

Exits 1 when a measurement failed (its error is printed with the other figures).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import socket
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_model import build_bench, matmul_peak

from model.config import DEMO_PRESET, PRESETS
from model.training import broadcast_module

CUDA_PRESET = "xmcgan-128"
DISTRIBUTED_PROCESSES = 2


@dataclass(frozen=True)
class Plan:
    """What one check runs, resolved from the options and the machine."""

    device: str  # "cuda" or "cpu"
    preset: str
    batch: int  # global batch of a step
    bf16: bool  # the training loop's bf16 autocast (it uses it on CUDA only)
    iterations: int
    warmup: int
    compile: bool
    processes: int  # > 1: also the NCCL run over that many GPUs
    skipped: tuple[str, ...]

    def __post_init__(self) -> None:
        problems = []
        if self.preset not in PRESETS or PRESETS[self.preset].architecture != "xmcgan":
            problems.append(f"preset must be an XMC-GAN preset, got {self.preset!r}")
        if self.batch < 1 or self.iterations < 1 or self.warmup < 0:
            problems.append("batch and iterations must be at least 1 and warmup at least 0")
        if self.batch % self.processes:
            problems.append(f"batch {self.batch} must split into {self.processes} processes")
        if problems:
            raise ValueError("invalid gpu check: " + "; ".join(problems))

    @property
    def torch_device(self) -> torch.device:
        return torch.device("cuda:0" if self.device == "cuda" else "cpu")


def plan_for(
    *,
    cuda_devices: int,
    preset: str | None = None,
    batch: int | None = None,
    iterations: int | None = None,
    warmup: int | None = None,
    compile: str = "auto",
) -> Plan:
    """The check for a machine with `cuda_devices` GPUs (0: the CPU path); None takes the path's default."""
    cuda = cuda_devices > 0
    preset = preset or (CUDA_PRESET if cuda else DEMO_PRESET)
    compiled = compile == "on" or (compile == "auto" and cuda)
    processes = DISTRIBUTED_PROCESSES if cuda_devices >= DISTRIBUTED_PROCESSES else 1
    skipped = []
    if not cuda:
        skipped += ["bf16 autocast (the training loop runs it on CUDA only): fp32",
                    "peak GPU memory (no CUDA): the process's peak RSS instead"]  # fmt: skip
    if not compiled:
        skipped.append("torch.compile" + (" (--compile off)" if compile == "off" else " (--compile on runs it)"))
    if processes == 1:
        skipped.append(f"the {DISTRIBUTED_PROCESSES}-process NCCL run ({cuda_devices} CUDA device(s))")
    return Plan(
        device="cuda" if cuda else "cpu",
        preset=preset,
        batch=batch or PRESETS[preset].recipe["batch_size"],
        bf16=cuda,
        iterations=iterations or (20 if cuda else 3),
        warmup=warmup if warmup is not None else (3 if cuda else 1),
        compile=compiled,
        processes=processes,
        skipped=tuple(skipped),
    )


def peak_memory_bytes(device: torch.device) -> int:
    """The CUDA allocator's peak since its last reset; on the CPU, the process's peak resident set (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed_run(plan: Plan, *, device: torch.device, batch: int, compile: bool = False) -> dict:
    """Warm-up, then the median iteration over `plan.iterations` and the peak memory of those iterations."""
    bench = build_bench(plan.preset, batch_size=batch, device=device, bf16=plan.bf16, compile=compile)
    if dist.is_initialized():  # every rank starts from rank 0's weights, as in `train`
        broadcast_module(bench.generator)
        broadcast_module(bench.discriminator)
    bench.time_iterations(plan.warmup)  # compiling happens here
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = statistics.median(bench.time_iterations(plan.iterations)["iteration"])
    return {
        "seconds_per_iteration": seconds,
        "images_per_iteration": bench.d_steps * plan.batch,  # real images shown to D, over all processes
        "images_per_second": bench.d_steps * plan.batch / seconds,
        "peak_memory_bytes": peak_memory_bytes(device),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _distributed_worker(rank: int, world: int, plan: Plan, backend: str, address: str, results) -> None:
    device = torch.device(f"cuda:{rank}") if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:  # the processes share the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group(backend, init_method=address, rank=rank, world_size=world)
    try:
        result = timed_run(plan, device=device, batch=plan.batch // world)
        if rank == 0:
            results.put(result)
    finally:
        dist.destroy_process_group()


def distributed_run(plan: Plan, *, backend: str = "nccl") -> dict:
    """`plan.processes` spawned processes over the same global batch (one GPU each on NCCL); rank 0's timings."""
    results = mp.get_context("spawn").SimpleQueue()
    address = f"tcp://127.0.0.1:{_free_port()}"
    mp.spawn(_distributed_worker, args=(plan.processes, plan, backend, address, results), nprocs=plan.processes)
    return results.get()


def check(plan: Plan, *, distributed_backend: str = "nccl", log=print) -> dict:
    """Run the plan; returns every figure (a failed measurement holds its error instead) and prints them."""
    device = plan.torch_device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        log(f"gpu_check: {name}, CUDA {torch.version.cuda}, torch {torch.__version__}, "
            f"{torch.cuda.device_count()} CUDA device(s)")  # fmt: skip
    else:
        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        log(f"gpu_check: the CPU path ({platform.machine()}, {torch.get_num_threads()} torch threads, torch "
            f"{torch.__version__}; {cuda} CUDA device(s) here)")  # fmt: skip
    precision = "bf16 autocast" if plan.bf16 else "fp32"
    log(f"  preset {plan.preset}, batch {plan.batch}, {precision}, {plan.warmup} warm-up + {plan.iterations} timed "
        f"iterations")  # fmt: skip
    dtype, size = (torch.bfloat16, 8192) if device.type == "cuda" else (torch.float32, 2048)
    peak_before = matmul_peak(size=size, dtype=dtype, device=device)
    flops = build_bench(plan.preset, batch_size=plan.batch, device=device, bf16=plan.bf16).step_flops()
    runs = {"eager": lambda: timed_run(plan, device=device, batch=plan.batch)}
    if plan.compile:
        runs["compiled"] = lambda: timed_run(plan, device=device, batch=plan.batch, compile=True)
    if plan.processes > 1:
        runs[f"{plan.processes} processes"] = lambda: distributed_run(plan, backend=distributed_backend)
    measured = {}
    for name, run in runs.items():
        try:
            measured[name] = run()
        except Exception as error:  # a check reports every figure it can; the failure is one of them
            measured[name] = {"error": f"{type(error).__name__}: {error}"}
    peak = max(peak_before, matmul_peak(size=size, dtype=dtype, device=device))  # before and after, as bench_model

    log(f"  device peak: {str(dtype).removeprefix('torch.')} {size}x{size} matmul, {_rate(peak)} (best of before "
        f"and after the runs)")  # fmt: skip
    log(f"  FLOPs an iteration: {flops['iteration'] / 1e9:.1f} G (D step {flops['discriminator step'] / 1e9:.1f} G, "
        f"G step {flops['generator step'] / 1e9:.1f} G; torch.utils.flop_counter)")  # fmt: skip
    memory = "peak memory" if device.type == "cuda" else "peak RSS"
    for name, result in measured.items():
        if "error" in result:
            log(f"  {name:<12} FAILED: {result['error']}")
            continue
        devices = plan.processes if name.endswith("processes") else 1
        result["achieved_flops"] = flops["iteration"] / result["seconds_per_iteration"]
        result["utilisation"] = result["achieved_flops"] / (devices * peak)
        log(f"  {name:<12} {result['images_per_second']:8.1f} images/s  {result['seconds_per_iteration']:.3f} s an "
            f"iteration (median)  {memory} {result['peak_memory_bytes'] / 2**30:.2f} GiB  "
            f"{_rate(result['achieved_flops'])} = {result['utilisation']:.3f} x peak"
            + (f" of {devices} devices" if devices > 1 else ""))  # fmt: skip
    results = {"plan": plan, "peak_flops": peak, "flops": flops, "runs": measured}
    eager, many = measured["eager"], measured.get(f"{plan.processes} processes")
    if many and "error" not in many and "error" not in eager:
        speedup = many["images_per_second"] / eager["images_per_second"]
        results["scaling_efficiency"] = speedup / plan.processes
        log(f"  {plan.processes} processes over the same global batch ({plan.processes} x "
            f"{plan.batch // plan.processes}): {speedup:.2f}x one process, scaling efficiency "
            f"{results['scaling_efficiency']:.2f}")  # fmt: skip
    for item in plan.skipped:
        log(f"  skipped: {item}")
    return results


def _rate(flops_per_second: float) -> str:
    tera = flops_per_second >= 1e12
    return f"{flops_per_second / 1e12:.1f} TFLOP/s" if tera else f"{flops_per_second / 1e9:.1f} GFLOP/s"


def failures(results: dict) -> list[str]:
    return [name for name, run in results["runs"].items() if "error" in run]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--preset", default=None, help=f"default: {CUDA_PRESET} on CUDA, {DEMO_PRESET} on CPU")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: the preset's recipe)")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations (default: 20 CUDA, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default: 3 CUDA, 1 CPU)")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto", help="auto: on CUDA only")
    args = parser.parse_args(argv)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if args.device == "cuda" and not available:
        parser.error("--device cuda: no CUDA device")
    plan = plan_for(
        cuda_devices=0 if args.device == "cpu" else available,
        preset=args.preset,
        batch=args.batch,
        iterations=args.iterations,
        warmup=args.warmup,
        compile=args.compile,
    )
    return check(plan)


if __name__ == "__main__":
    sys.exit(1 if failures(main()) else 0)
