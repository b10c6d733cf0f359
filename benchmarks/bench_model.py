"""Training-step speed of an XMC-GAN preset on this machine, against its practical peak.

One iteration is the authors' schedule as the training loop runs it (its own `phase_step`):
`--d-steps` discriminator steps (each on a fresh batch of real images) and one generator step on
the last batch, each with backward and an Adam step, then the EMA update.
Prints, measured in the same run:
  - the peak: FLOP/s of a large fp32 matmul (what this machine's BLAS reaches),
  - the FLOPs of each phase (torch.utils.flop_counter, forward and backward),
  - the time of an iteration (median over `--iterations`), real images/s, achieved FLOP/s,
    and achieved / peak.
Text embeddings are random tensors of the default encoder's width (MiniLM, 384), so the text
encoder is not timed: training reads precomputed embeddings.

    python benchmarks/bench_model.py [--preset cpu-32] [--batch 32] [--model image_size=32 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.config import PRESETS, preset
from model.discriminator import Discriminator
from model.ema import ema_update
from model.generator import Generator
from model.objective import XMCGANLoss, pretrained_image_encoder
from model.text_encoder import TextEmbedding
from model.training import NO_NATIVE_BF16, cpu_has_native_bf16, phase_step


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU has nothing to wait for)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(
    *, size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> float:
    """FLOP/s of the fastest of `repeats` `dtype` (size x size) @ (size x size) products on `device`: 2 size^3 each."""
    device = device or torch.device("cpu")
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    a @ b
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def parse_overrides(items: list[str]) -> dict:
    """["image_size=32", "g_channels=[8,4,2]"] -> {"image_size": 32, "g_channels": [8, 4, 2]} (values as JSON)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"override {item!r} must be key=value")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


@dataclass
class TrainingBench:
    """A preset's networks, objective and optimisers on one device, stepped by the training loop's own
    `phase_step` (model/training.py) on random batches: an iteration is `d_steps` D steps, each on a
    fresh batch, then a G step on the last batch with new noise, then the EMA update, as `train` runs it.
    Text embeddings are random tensors of the encoder's width: training reads precomputed ones."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    generator_ema: torch.nn.Module
    vgg: torch.nn.Module | None
    loss: XMCGANLoss
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    batch_size: int
    d_steps: int
    tokens: int
    text_dim: int
    device: torch.device
    autocast: contextlib.AbstractContextManager

    @property
    def image_size(self) -> int:
        return self.generator.config.image_size

    def batch(self) -> dict:
        b, device = self.batch_size, self.device
        lengths = torch.randint(3, self.tokens + 1, (b, 1))
        text = TextEmbedding(
            torch.randn(b, self.tokens, self.text_dim),
            torch.arange(self.tokens) < lengths,
            torch.randn(b, self.text_dim),
        ).to(device)
        real = torch.rand(b, 3, self.image_size, self.image_size, device=device) * 2 - 1
        return dict(real=real, text=text, z=self.noise())

    def noise(self) -> torch.Tensor:
        return torch.randn(self.batch_size, self.generator.config.z_dim, device=self.device)

    def d_step(self, batch: dict) -> None:
        phase_step(self.loss.discriminator_loss, self.discriminator, self.opt_d, [(batch["real"], batch["text"])],
                   noise=lambda micro: batch["z"], autocast=self.autocast, terms={})  # fmt: skip

    def g_step(self, batch: dict) -> None:
        z = self.noise()  # the loop's G step: the last D step's images and captions, new noise
        phase_step(self.loss.generator_loss, self.generator, self.opt_g, [(batch["real"], batch["text"])],
                   noise=lambda micro: z, autocast=self.autocast, terms={})  # fmt: skip
        ema_update(self.generator_ema, self.generator, decay=0.999)

    def step_flops(self) -> dict[str, int]:
        """FLOPs (forward and backward, torch.utils.flop_counter) of one D step and one G step, run eagerly."""
        flops = {}
        for name, step in (("discriminator step", self.d_step), ("generator step", self.g_step)):
            counter = FlopCounterMode(display=False)
            with counter:
                step(self.batch())
            flops[name] = counter.get_total_flops()
        flops["iteration"] = self.d_steps * flops["discriminator step"] + flops["generator step"]
        return flops

    def time_iterations(self, iterations: int) -> dict[str, list[float]]:
        """Seconds of each of `iterations` iterations, and of its D steps (per step) and G step."""
        d_times, g_times, times = [], [], []
        for _ in range(iterations):
            synchronize(self.device)
            start = time.perf_counter()
            for _ in range(self.d_steps):
                batch = self.batch()
                self.d_step(batch)
            synchronize(self.device)
            middle = time.perf_counter()
            self.g_step(batch)
            synchronize(self.device)
            end = time.perf_counter()
            d_times.append((middle - start) / self.d_steps)
            g_times.append(end - middle)
            times.append(end - start)
        return {"iteration": times, "discriminator step": d_times, "generator step": g_times}


def build_bench(
    preset_name: str,
    *,
    batch_size: int | None = None,
    d_steps: int | None = None,
    tokens: int = 17,
    text_dim: int = 384,
    model_overrides: dict | None = None,
    loss_overrides: dict | None = None,
    device: torch.device | None = None,
    bf16: bool = False,
    compile: bool = False,
    seed: int = 0,
) -> TrainingBench:
    """The preset's networks, loss and Adam optimisers as `train` builds them; batch and D steps
    default to the preset's recipe. `bf16`: the loop's bf16 autocast (CUDA, or a CPU with AMX or
    AVX512-BF16). `compile`: G and D compiled inside the loss, the optimisers on the plain modules, as
    `train` does."""
    device = device or torch.device("cpu")
    recipe = PRESETS[preset_name].recipe
    model_config, loss_config = preset(preset_name, text_dim=text_dim, **(model_overrides or {}))
    loss_config = type(loss_config).from_dict({**loss_config.to_dict(), **(loss_overrides or {})})
    torch.manual_seed(seed)
    generator, discriminator = Generator(model_config).to(device), Discriminator(model_config).to(device)
    generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    vgg = pretrained_image_encoder(loss_config)
    vgg = vgg.to(device) if vgg is not None else None
    loss = XMCGANLoss(
        generator=torch.compile(generator) if compile else generator,
        discriminator=torch.compile(discriminator) if compile else discriminator,
        vgg=vgg,
        config=loss_config,
    )
    return TrainingBench(
        generator=generator,
        discriminator=discriminator,
        generator_ema=generator_ema,
        vgg=vgg,
        loss=loss,
        opt_g=torch.optim.Adam(generator.parameters(), lr=recipe["g_lr"], betas=recipe["betas"]),
        opt_d=torch.optim.Adam(discriminator.parameters(), lr=recipe["d_lr"], betas=recipe["betas"]),
        batch_size=batch_size or recipe["batch_size"],
        d_steps=d_steps or recipe["d_steps_per_g_step"],
        tokens=tokens,
        text_dim=text_dim,
        device=device,
        autocast=torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
    )


def profile_parts(bench: TrainingBench, repeats: int) -> dict:
    """Median seconds of each part of an iteration, each run on its own (the G step's parts add up
    to one G step: its D pass is the D forward + backward reached through the fakes)."""
    generator, discriminator, vgg, loss = bench.generator, bench.discriminator, bench.vgg, bench.loss
    opt_g, opt_d, generator_ema, batch = bench.opt_g, bench.opt_d, bench.generator_ema, bench.batch

    def timed(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    b = batch()
    parts = {}
    with torch.no_grad():
        parts["G forward, no grad"] = timed(lambda: generator(b["z"], b["text"]))
    fake = generator(b["z"], b["text"]).detach()

    def d_only():
        opt_d.zero_grad(set_to_none=True)
        both = discriminator(torch.cat([b["real"], fake]), torch.cat([b["text"].sentence] * 2))
        real_out, fake_out = both.split(len(fake))
        total = loss._info_nce(real_out.image_features, real_out.sentence_features)
        total = total + loss._word_loss(real_out.region_features, b["text"]) + fake_out.logits.mean()
        total.backward()

    parts["D forward + backward + losses, real + fake"] = timed(d_only)
    parts["G step: G forward + backward"] = timed(lambda: generator(b["z"], b["text"]).square().mean().backward())

    def through_d():
        image = fake.clone().requires_grad_(True)
        out = discriminator(image, b["text"].sentence)
        (out.logits.mean() + loss._info_nce(out.image_features, out.sentence_features)
         + loss._word_loss(out.region_features, b["text"])).backward()  # fmt: skip

    parts["G step: D forward + backward to the fakes, its losses"] = timed(through_d)
    if vgg is not None:

        def vgg_part():
            image = fake.clone().requires_grad_(True)
            with torch.no_grad():
                real_features = vgg(b["real"])
            loss._info_nce(vgg(image), real_features).backward()

        parts["G step: VGG-19 forward (real, fake) + backward (fake)"] = timed(vgg_part)
    parts["Adam steps (D and G) + EMA"] = timed(
        lambda: (opt_d.step(), opt_g.step(), ema_update(generator_ema, generator, decay=0.999))
    )
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-32", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=None, help="default: the preset's recipe")
    parser.add_argument("--d-steps", type=int, default=None, help="default: the preset's recipe")
    parser.add_argument("--profile", action="store_true", help="also time each part of an iteration on its own")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast (training's cpu_amp on a CPU with native bf16, amp on CUDA); bf16 baseline",
    )
    parser.add_argument("--tokens", type=int, default=17, help="caption length in tokens (17 COCO, 64 LN)")
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)")
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE", help="ModelConfig overrides")
    parser.add_argument("--loss", nargs="*", default=[], metavar="KEY=VALUE", help="LossConfig overrides")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bf16 and not cpu_has_native_bf16():
        print(f"warning: {NO_NATIVE_BF16} (training's cpu_amp trains in fp32 here)", file=sys.stderr)
    model_overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in parse_overrides(args.model).items()}
    bench = build_bench(args.preset, batch_size=args.batch, d_steps=args.d_steps, tokens=args.tokens,
                        text_dim=args.text_dim, model_overrides=model_overrides,
                        loss_overrides=parse_overrides(args.loss), bf16=args.bf16)  # fmt: skip
    flops = bench.step_flops()
    iteration_flops = flops["iteration"]

    matmul_dtype = torch.bfloat16 if args.bf16 else torch.float32
    peak_before = matmul_peak(dtype=matmul_dtype)
    timed = bench.time_iterations(args.iterations)
    peak = max(peak_before, matmul_peak(dtype=matmul_dtype))
    times, d_times, g_times = timed["iteration"], timed["discriminator step"], timed["generator step"]

    iteration = statistics.median(times)
    achieved = iteration_flops / iteration
    params = {
        "G": sum(p.numel() for p in bench.generator.parameters()),
        "D": sum(p.numel() for p in bench.discriminator.parameters()),
    }
    b, size, d_steps = bench.batch_size, bench.image_size, bench.d_steps
    print(f"preset {args.preset}  model overrides {model_overrides}  loss {parse_overrides(args.loss)}")
    print(f"  image {size}x{size}  batch {b}  tokens {args.tokens}  text dim {args.text_dim}", end="")
    print(f"  torch threads {torch.get_num_threads()}")
    print(f"  parameters: G {params['G'] / 1e6:.2f}M  D {params['D'] / 1e6:.2f}M")
    print(f"  FLOPs: D step {flops['discriminator step'] / 1e9:.1f} G  G step {flops['generator step'] / 1e9:.1f} G  "
          f"iteration ({d_steps} D + 1 G) {iteration_flops / 1e9:.1f} G")  # fmt: skip
    print(f"  time: D step {statistics.median(d_times):.3f} s  G step {statistics.median(g_times):.3f} s  "
          f"iteration {iteration:.3f} s (median of {args.iterations}; min {min(times):.3f} s)")  # fmt: skip
    print(f"  real images/s: {d_steps * b / iteration:.1f}  ({d_steps} fresh batches of {b} per iteration)")
    print(f"  {'bf16' if args.bf16 else 'fp32'} matmul peak (baseline, same run): {peak / 1e9:.1f} GFLOP/s")
    print(f"  achieved: {achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.3f} x peak")
    if args.profile:
        parts = profile_parts(bench, args.iterations)
        parts["iteration (measured above)"] = iteration
        pieces = d_steps * (parts["G forward, no grad"] + parts["D forward + backward + losses, real + fake"])
        pieces += sum(parts[k] for k in parts if k.startswith(("G step:", "Adam")))
        parts["rest (Python, allocation)"] = iteration - pieces
        print(f"  where an iteration's time goes ({d_steps} D steps + 1 G step; medians of {args.iterations}):")
        counts = {"G forward, no grad": d_steps, "D forward + backward + losses, real + fake": d_steps}
        for name, seconds in parts.items():
            total = seconds * counts.get(name, 1)
            print(f"    {name:<58} {total * 1e3:8.1f} ms  {total / iteration:6.1%}")


if __name__ == "__main__":
    main()
