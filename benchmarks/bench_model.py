"""Training-step speed of an XMC-GAN preset on this machine, against its practical peak.

One iteration is the authors' schedule: `--d-steps` discriminator steps (each on a fresh batch of
real images) and one generator step, each with backward and an Adam step, then the EMA update.
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
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.config import PRESETS, LossConfig, preset
from model.discriminator import Discriminator
from model.ema import ema_update
from model.generator import Generator
from model.objective import XMCGANLoss
from model.text_encoder import TextEmbedding
from model.vgg import VGG19Features


def matmul_peak(*, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of the fastest of `repeats` fp32 (size x size) @ (size x size) products: 2 size^3 each."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
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


def profile_parts(generator, discriminator, vgg, loss, batch, opt_g, opt_d, generator_ema, repeats: int) -> dict:
    """Median seconds of each part of an iteration, each run on its own (the G step's parts add up
    to one G step: its D pass is the D forward + backward reached through the fakes)."""

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
    parser.add_argument("--tokens", type=int, default=17, help="caption length in tokens (17 COCO, 64 LN)")
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)")
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE", help="ModelConfig overrides")
    parser.add_argument("--loss", nargs="*", default=[], metavar="KEY=VALUE", help="LossConfig overrides")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = PRESETS[args.preset].recipe
    args.batch = args.batch or recipe["batch_size"]
    args.d_steps = args.d_steps or recipe["d_steps_per_g_step"]

    model_overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in parse_overrides(args.model).items()}
    model_config, loss_config = preset(args.preset, text_dim=args.text_dim, **model_overrides)
    loss_config = LossConfig.from_dict({**loss_config.to_dict(), **parse_overrides(args.loss)})
    torch.manual_seed(0)
    generator, discriminator = Generator(model_config), Discriminator(model_config)
    generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    vgg = None
    if loss_config.vgg_weight > 0:
        vgg = VGG19Features(layer=loss_config.vgg_layer, input_size=loss_config.vgg_input_size)
    loss = XMCGANLoss(generator=generator, discriminator=discriminator, vgg=vgg, config=loss_config)
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=4e-4, betas=(0.5, 0.999))

    b, size = args.batch, model_config.image_size

    def batch() -> dict:
        lengths = torch.randint(3, args.tokens + 1, (b, 1))
        text = TextEmbedding(
            torch.randn(b, args.tokens, args.text_dim),
            torch.arange(args.tokens) < lengths,
            torch.randn(b, args.text_dim),
        )
        return dict(real=torch.rand(b, 3, size, size) * 2 - 1, text=text, z=torch.randn(b, model_config.z_dim))

    def d_step() -> None:
        opt_d.zero_grad(set_to_none=True)
        loss.discriminator_loss(**batch())[0].backward()
        opt_d.step()

    def g_step() -> None:
        opt_g.zero_grad(set_to_none=True)
        loss.generator_loss(**batch())[0].backward()
        opt_g.step()
        ema_update(generator_ema, generator, decay=0.999)

    flops = {}
    for name, step in (("discriminator step", d_step), ("generator step", g_step)):
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops[name] = counter.get_total_flops()
    iteration_flops = args.d_steps * flops["discriminator step"] + flops["generator step"]

    peak_before = matmul_peak()
    d_times, g_times, times = [], [], []
    for _ in range(args.iterations):
        start = time.perf_counter()
        for _ in range(args.d_steps):
            d_step()
        middle = time.perf_counter()
        g_step()
        end = time.perf_counter()
        d_times.append((middle - start) / args.d_steps)
        g_times.append(end - middle)
        times.append(end - start)
    peak = max(peak_before, matmul_peak())

    iteration = statistics.median(times)
    achieved = iteration_flops / iteration
    params = {
        "G": sum(p.numel() for p in generator.parameters()),
        "D": sum(p.numel() for p in discriminator.parameters()),
    }
    print(f"preset {args.preset}  model overrides {model_overrides}  loss {parse_overrides(args.loss)}")
    print(f"  image {size}x{size}  batch {b}  tokens {args.tokens}  text dim {args.text_dim}", end="")
    print(f"  torch threads {torch.get_num_threads()}")
    print(f"  parameters: G {params['G'] / 1e6:.2f}M  D {params['D'] / 1e6:.2f}M")
    print(f"  FLOPs: D step {flops['discriminator step'] / 1e9:.1f} G  G step {flops['generator step'] / 1e9:.1f} G  "
          f"iteration ({args.d_steps} D + 1 G) {iteration_flops / 1e9:.1f} G")  # fmt: skip
    print(f"  time: D step {statistics.median(d_times):.3f} s  G step {statistics.median(g_times):.3f} s  "
          f"iteration {iteration:.3f} s (median of {args.iterations}; min {min(times):.3f} s)")  # fmt: skip
    print(f"  real images/s: {args.d_steps * b / iteration:.1f}  ({args.d_steps} fresh batches of {b} per iteration)")
    print(f"  matmul peak (baseline, same run): {peak / 1e9:.1f} GFLOP/s")
    print(f"  achieved: {achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.3f} x peak")
    if args.profile:
        parts = profile_parts(generator, discriminator, vgg, loss, batch, opt_g, opt_d, generator_ema, args.iterations)
        parts["iteration (measured above)"] = iteration
        pieces = args.d_steps * (parts["G forward, no grad"] + parts["D forward + backward + losses, real + fake"])
        pieces += sum(parts[k] for k in parts if k.startswith(("G step:", "Adam")))
        parts["rest (Python, allocation)"] = iteration - pieces
        print(f"  where an iteration's time goes ({args.d_steps} D steps + 1 G step; medians of {args.iterations}):")
        counts = {"G forward, no grad": args.d_steps, "D forward + backward + losses, real + fake": args.d_steps}
        for name, seconds in parts.items():
            total = seconds * counts.get(name, 1)
            print(f"    {name:<58} {total * 1e3:8.1f} ms  {total / iteration:6.1%}")


if __name__ == "__main__":
    main()
