"""benchmarks/gpu_check.py: its CPU path runs for real (the demo preset, fp32, a tiny iteration count)
and gives positive, finite figures; what it plans on a CUDA machine; its multi-process run, which
uses NCCL on GPUs, on gloo processes here."""

import dataclasses
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # a script folder, not a package

from model.config import DEMO_PRESET


def positive_and_finite(run: dict) -> bool:
    figures = ("seconds_per_iteration", "images_per_second", "peak_memory_bytes", "achieved_flops", "utilisation")
    return all(math.isfinite(run[f]) and run[f] > 0 for f in figures)


def test_the_cpu_path_runs_the_demo_preset_and_says_what_it_skipped(capsys):
    results = gpu_check.main(["--device", "cpu", "--iterations", "1", "--warmup", "0"])
    printed = capsys.readouterr().out
    plan = results["plan"]
    assert (plan.device, plan.preset, plan.batch, plan.bf16, plan.compile, plan.processes) == (
        "cpu", DEMO_PRESET, 32, False, False, 1,
    )  # fmt: skip
    assert set(results["runs"]) == {"eager"} and positive_and_finite(results["runs"]["eager"])
    flops = results["flops"]
    assert flops["iteration"] == 2 * flops["discriminator step"] + flops["generator step"] > 0
    assert results["peak_flops"] > 0 and math.isfinite(results["peak_flops"])
    eager = results["runs"]["eager"]
    assert f"{eager['images_per_second']:8.1f} images/s" in printed
    for skipped in ("torch.compile (--compile on runs it)", "the 2-process NCCL run", "bf16 autocast"):
        assert f"skipped: {skipped}" in printed
    assert gpu_check.failures(results) == []


def test_on_cuda_it_plans_the_authors_model_in_bf16_with_compile_and_nccl():
    one = gpu_check.plan_for(cuda_devices=1)
    assert (one.preset, one.batch, one.bf16, one.compile, one.iterations, one.processes) == (
        "xmcgan-128", 56, True, True, 20, 1,
    )  # fmt: skip
    assert one.skipped == ("the 2-process NCCL run (1 CUDA device(s))",)
    two = gpu_check.plan_for(cuda_devices=8, compile="off")
    assert (two.processes, two.compile, two.skipped) == (2, False, ("torch.compile (--compile off)",))
    with pytest.raises(ValueError, match=r"XMC-GAN preset.*batch 55 must split into 2 processes"):
        gpu_check.plan_for(cuda_devices=2, preset="mirrorgan-256", batch=55)


@pytest.mark.slow
def test_the_multi_process_run_trains_over_the_same_global_batch():
    plan = dataclasses.replace(gpu_check.plan_for(cuda_devices=0, iterations=1, warmup=0), processes=2)
    results = gpu_check.check(plan, distributed_backend="gloo", log=lambda line: None)
    assert set(results["runs"]) == {"eager", "2 processes"} and gpu_check.failures(results) == []
    many = results["runs"]["2 processes"]
    assert many["images_per_iteration"] == results["runs"]["eager"]["images_per_iteration"] == 2 * 32
    assert positive_and_finite(many) and results["scaling_efficiency"] > 0
