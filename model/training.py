"""The training loop, to be read top to bottom, shared by both architectures: the preset's family
brings its networks, objective, sample stream and model folder (`TrainingParts`: XMC-GAN's built
below, MirrorGAN's in model/mirrorgan/training.py); data order, phases, gradients, EMA, ticks,
checkpoints and resume are the same code.

One process per GPU (or per CPU process with gloo), started by torchrun; a single plain process
works too. Per iteration, in the authors' schedule: `d_steps_per_g_step` discriminator steps, each
on a fresh global batch, then one generator step on the last batch, then the EMA update of G
(MirrorGAN: one D step, whose fakes its generator step reuses).

Distributed training syncs gradients with one all-reduce of the flattened gradients per step (as
NVlabs/stylegan3 does) instead of a DDP wrapper: GAN phases use parameters of both networks in
different combinations, which DDP's bucketing handles badly. Batch-norm statistics in G are
per process unless `sync_batch_stats` is set in the model config, in which case they are
all-reduced across processes (torch's SyncBatchNorm refuses CPU tensors); contrastive negatives
are the local batch unless `gather_negatives` is set in the loss config. With both set, N
processes compute the gradients of one process over the same global batch.

Everything random is a function of (seed, position or step): the data order, caption choice and
flips (model/training_data.py) and the noise z. Resuming from a checkpoint therefore continues
the exact run it interrupted.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import load_latest_checkpoint, publish_folder, save_checkpoint
from .config import DEMO_PRESET, PRESETS, RECIPE_FIELDS, preset
from .data import DEFAULT_MAX_LENGTHS
from .discriminator import Discriminator
from .distributed import rank as process_rank
from .distributed import world_size
from .ema import ema_update
from .generator import Generator
from .objective import XMCGANLoss, pretrained_image_encoder
from .progress import progress_bar
from .sampling import write_model_folder
from .settings import DictConfig, setting
from .text_encoder import DEFAULT_TEXT_ENCODER, TextEmbedding
from .training_data import PositionStream, TrainingArrays, check_record_size, prepare_arrays, rank_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig(DictConfig):
    """Everything a run needs; written to <run_dir>/config.json. Schedules count images seen
    (real images shown to the discriminator), so they mean the same at any batch size.

    The training recipe (model.config.RECIPE_FIELDS: batch, Adam, D steps, flips, EMA, length) comes
    from the preset; a recipe field given here (not None) overrides it, and `origins` records which
    values are the preset's."""

    run_dir: str = setting(help="folder for the run: config.json, checkpoints/, model/, summary.json")
    data_root: str = setting(help="processed data root (records/ and embeddings/ from ingest and embed)")
    sources: tuple[str, ...] = setting(("coco",), help="sources to train on, YAML list (coco, ln_coco, ln_open_images)")
    encoder: str = setting(DEFAULT_TEXT_ENCODER, help="text encoder whose embeddings to use (hub name or path)")
    max_lengths: dict[str, int] = setting(
        factory=lambda: dict(DEFAULT_MAX_LENGTHS), help="token length per source, YAML map"
    )
    preset: str = setting(
        DEMO_PRESET,
        help="architecture and training recipe: cpu-32 (the demo), cpu-64, xmcgan-128, xmcgan-256 (the authors'); "
        "MirrorGAN: mirrorgan-32 (the demo), mirrorgan-64, mirrorgan-256 (the authors')",
    )
    model_overrides: dict = setting(factory=dict, help="model config fields to override, YAML map")
    loss_overrides: dict = setting(
        factory=dict, help="loss config fields to override (weights, temperature, ...), YAML map"
    )
    # The recipe: None takes the preset's value.
    batch_size: int | None = setting(
        None, help="global batch per optimiser step over all processes (default: the preset's)"
    )
    d_steps_per_g_step: int | None = setting(
        None, help="discriminator steps per generator step (default: the preset's)"
    )
    g_lr: float | None = setting(None, help="generator learning rate (default: the preset's)")
    d_lr: float | None = setting(None, help="discriminator learning rate (default: the preset's)")
    betas: tuple[float, float] | None = setting(None, help="Adam betas, YAML list (default: the preset's)")
    horizontal_flip: bool | None = setting(
        None, help="flip training images at random; off when captions name left and right (default: the preset's)"
    )
    # EMA of G as a half-life in images seen (NVlabs/stylegan3): the authors' decay of 0.999 per
    # iteration of 2 x 56 images is a half-life of 112 * ln 0.5 / ln 0.999 = 77,594 images.
    ema_half_life_images: float | None = setting(
        None, help="half-life of the generator's EMA in images seen (default: the preset's)"
    )
    total_images: int | None = setting(
        None, help="the budget: stop after this many real images (default: the preset's)"
    )
    # Early on, the EMA half-life is `ema_rampup` x images seen, so a short run's EMA forgets the
    # random initialisation (at 0.999 per step, 375 steps would still hold 69 % of it); 0 turns that off.
    ema_rampup: float = setting(0.05, help="early half-life = this x images seen, until ema_half_life_images (0: off)")
    # A short run at a high rate learns fast but ends wherever its last steps threw it; a linear decay over
    # the budget's tail lets the weights settle (images seen, so the same at any batch and on resume).
    lr_decay_start: float = setting(
        1.0, help="fraction of total_images after which both learning rates fall linearly to 0 (1: constant)"
    )
    grad_accumulation: int = setting(1, help="micro-batches per optimiser step")
    time_limit_minutes: float = setting(0.0, help="also stop at the first tick after this many minutes (0: no limit)")
    tick_images: int = setting(2_000, help="log losses and throughput every this many images")
    checkpoint_images: int = setting(20_000, help="checkpoint every this many images")
    sample_every_ticks: int = setting(5, help="log a sample grid every this many ticks")
    sample_count: int = setting(16, help="images in the sample grid")
    keep_checkpoints: int = setting(3, help="checkpoints kept on disk")
    seed: int = setting(0, help="seed of initialisation, data order and noise")
    workers: int = setting(2, help="data loader worker processes per training process")
    # On CPU a reduction split over another number of threads rounds differently, and training amplifies
    # it (Adam moves a weight whose gradient is near zero by about lr either way): runs at 1 and 2 threads
    # part after one step and end as different models. A fixed count gives the same model on any machine
    # with that many cores, loaded or not.
    cpu_threads: int = setting(
        0, help="intra-op threads of a CPU run (0: torch's default, every core); fixed: the same model on any machine"
    )
    amp: bool = setting(True, help="bf16 autocast on GPU")
    # On a CPU that multiplies bf16 natively (AMX: Intel Xeon Sapphire Rapids on; AVX512-BF16: AMD Zen 4
    # on) the demo's iteration runs 1.6x faster in bf16 than in fp32; elsewhere oneDNN emulates bf16,
    # many times slower than fp32 (AVX2: no 6 iterations in 8 minutes), so such a CPU trains in fp32.
    cpu_amp: bool = setting(
        False, help="bf16 autocast on a CPU with native bf16, AMX or AVX512-BF16 (fp32 elsewhere, with a warning)"
    )
    compile: bool = setting(False, help="torch.compile the networks")
    provenance: dict = setting(factory=dict, help="lineage copied into the model folder, YAML map")
    pretrained: str = setting(
        "", help="MirrorGAN presets: the folder `python -m components.pretrain` wrote (DAMSM's STEM and STREAM)"
    )
    # Records smaller than the preset's image size are refused; true resizes them up anyway (smoke tests only:
    # the model then learns from interpolated pixels). Larger records are always resized down.
    upsample_records: bool = setting(
        False,
        help="train on records smaller than the preset's image size, resized up (smoke tests only; refused otherwise)",
    )
    # field -> where its value came from: the preset's recipe (filled in here), params.yaml, the command line
    origins: dict = field(default_factory=dict, metadata={"option": False})

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(
                f"invalid training config: unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}"
            )
        recipe = PRESETS[self.preset].recipe
        origins = dict(self.origins)
        for name in RECIPE_FIELDS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, recipe[name])
                origins[name] = f"preset {self.preset}"
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "origins", origins)
        problems = []
        if self.batch_size < 1 or self.grad_accumulation < 1 or self.d_steps_per_g_step < 1:
            problems.append("batch_size, grad_accumulation and d_steps_per_g_step must be at least 1")
        if self.ema_half_life_images <= 0 or self.ema_rampup < 0:
            problems.append("ema_half_life_images must be positive and ema_rampup at least 0")
        if not 0 <= self.lr_decay_start <= 1:
            problems.append(f"lr_decay_start must be a fraction of total_images in [0, 1], got {self.lr_decay_start}")
        if self.cpu_threads < 0:
            problems.append(f"cpu_threads must be 0 (torch's default) or a thread count, got {self.cpu_threads}")
        if self.total_images < 1 or self.tick_images < 1 or self.checkpoint_images < 1:
            problems.append("total_images, tick_images and checkpoint_images must be positive")
        if not (self.g_lr > 0 and self.d_lr > 0 and len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            problems.append(f"g_lr and d_lr must be positive and betas two numbers in [0, 1), got "
                            f"{self.g_lr}, {self.d_lr}, {list(self.betas)}")  # fmt: skip
        if PRESETS[self.preset].architecture == "mirrorgan" and self.d_steps_per_g_step != 1:
            problems.append("MirrorGAN updates each discriminator once per generator step (d_steps_per_g_step 1)")
        unknown = set(self.sources) - set(self.max_lengths)
        if unknown:
            problems.append(f"sources {sorted(unknown)} have no max length in max_lengths {self.max_lengths}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))


class Reporter(Protocol):
    """Where a run reports to (MLflow in components/train); only rank 0 calls it."""

    def on_start(self, *, config: dict, model_config: dict, parameters: dict[str, int]) -> None: ...
    def on_tick(self, *, images_seen: int, stats: dict[str, float]) -> None: ...
    def on_samples(self, *, images_seen: int, grid: np.ndarray, captions: list[str]) -> None: ...
    def on_end(self, *, model_dir: Path, summary: dict) -> None: ...


# ---------------------------------------------------------------------------------------------
# Distributed helpers: no-ops in a single process.


def average_gradients(module: torch.nn.Module) -> None:
    """All-reduce the mean of every trainable parameter's gradient in one flat buffer."""
    world = world_size()
    if world == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:  # a parameter this phase did not reach on this rank still joins the buffer
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= world
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad.copy_(g.view_as(p))


def broadcast_module(module: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights and buffers."""
    if world_size() > 1:
        for tensor in (*module.parameters(), *module.buffers()):
            dist.broadcast(tensor.data, src=0)


def mean_across_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    buffer = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(buffer)
    return dict(zip(keys, (buffer / world_size()).tolist(), strict=True))


def any_rank(flag: bool, device: torch.device) -> bool:
    if world_size() == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def noise(*, seed: int, step: int, phase: int, micro: int, global_batch: int, z_dim: int, rank: int, world: int):
    """This rank's slice of the global batch's z: the same numbers whatever the number of ranks."""
    state = int(np.random.SeedSequence([seed, step, phase, micro]).generate_state(1, np.uint64)[0])
    generator = torch.Generator().manual_seed(state)
    z = torch.randn(global_batch, z_dim, generator=generator, dtype=torch.float32)
    per_rank = global_batch // world
    return z[rank * per_rank : (rank + 1) * per_rank]


def ema_decay(config: TrainConfig, *, images_seen: int) -> float:
    """Per-iteration EMA decay for the configured half-life (in images seen), ramped up early on."""
    half_life = config.ema_half_life_images
    if config.ema_rampup > 0:
        half_life = min(half_life, images_seen * config.ema_rampup)
    images_per_iteration = config.batch_size * config.d_steps_per_g_step
    return 0.5 ** (images_per_iteration / max(half_life, 1e-8))


def lr_scale(config: TrainConfig, *, images_seen: int) -> float:
    """Factor on both learning rates: 1, then linearly down to 0 from lr_decay_start x total_images on."""
    start = config.lr_decay_start * config.total_images
    if images_seen <= start:
        return 1.0
    return max(0.0, (config.total_images - images_seen) / (config.total_images - start))


def set_lr(optimiser: torch.optim.Optimizer, lr: float) -> None:
    for group in optimiser.param_groups:
        group["lr"] = lr


def to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, TextEmbedding]:
    real = batch["image"].to(device, non_blocking=True)
    text = TextEmbedding(batch["words"], batch["mask"], batch["sentence"]).to(device)
    return real, text


@dataclass
class TrainingParts:
    """An architecture's share of the loop: `xmcgan_parts` below, model/mirrorgan/training.py for MirrorGAN."""

    model_config: object  # with the text width set
    generator: torch.nn.Module  # forward(z, text) -> images in [-1, 1]: trained, EMA'd, checkpointed, sampled
    discriminator: torch.nn.Module
    make_loss: Callable  # (G, D as the loop runs them) -> an object with discriminator_loss / generator_loss
    dataset: torch.utils.data.Dataset  # global position -> sample, a function of (seed, position)
    to_device: Callable  # (loader batch, device) -> (real images, text)
    sample_text: Callable  # caption rows of the arrays -> the sample grid's text, on the device
    write_model: Callable  # (folder, EMA generator, provenance) -> the model folder


def xmcgan_parts(config: TrainConfig, model_config, loss_config, arrays: TrainingArrays, device) -> TrainingParts:
    model_config = model_config.replace(text_dim=arrays.tokens.shape[-1])
    torch.manual_seed(config.seed)
    generator = Generator(model_config).to(device)
    discriminator = Discriminator(model_config).to(device)
    vgg = pretrained_image_encoder(loss_config)  # VGG-19 features or ResNet-50 logits (LossConfig.image_encoder)
    vgg = vgg.to(device) if vgg is not None else None
    encoder = {"name": arrays.encoder["name"], "max_length": arrays.encoder["max_length"]}

    def sample_text(rows: list[int]) -> TextEmbedding:
        return TextEmbedding(
            torch.from_numpy(np.array(arrays.tokens[rows])).float(),
            torch.from_numpy(np.array(arrays.masks[rows])),
            torch.from_numpy(np.array(arrays.sentences[rows])),
        ).to(device)

    return TrainingParts(
        model_config=model_config,
        generator=generator,
        discriminator=discriminator,
        make_loss=lambda g, d: XMCGANLoss(generator=g, discriminator=d, vgg=vgg, config=loss_config),
        dataset=PositionStream(arrays, seed=config.seed, flip=config.horizontal_flip),
        to_device=to_device,
        sample_text=sample_text,
        write_model=lambda folder, g, provenance: write_model_folder(
            folder, generator=g, text_encoder=encoder, provenance=provenance
        ),
    )


# ---------------------------------------------------------------------------------------------


def train(config: TrainConfig, *, reporter: Reporter | None = None) -> dict:
    """Run (or resume) training to `config.total_images`; returns a summary. Call on every rank."""
    with intra_op_threads(config.cpu_threads):
        return _train(config, reporter=reporter)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX tiles or AVX512-BF16), as torch's oneDNN sees it."""
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


NO_NATIVE_BF16 = "this CPU has neither AMX nor AVX512-BF16, so bf16 would be emulated, many times slower than fp32"


def trains_in_bf16(config: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast on CUDA (`amp`) and on a CPU with native bf16 (`cpu_amp`); fp32 otherwise."""
    if device.type == "cuda":
        return config.amp
    if not config.cpu_amp:
        return False
    if not cpu_has_native_bf16():
        log.warning("cpu_amp: %s; training in fp32", NO_NATIVE_BF16)
        return False
    return True


@contextlib.contextmanager
def intra_op_threads(count: int):
    """torch's intra-op threads set to `count` for a CPU run (0, or CUDA: left as they are), restored after."""
    before = torch.get_num_threads()
    if count and not torch.cuda.is_available():
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(config: TrainConfig, *, reporter: Reporter | None) -> dict:
    rank, world = process_rank(), world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    run_dir = Path(config.run_dir)
    micro_batch, remainder = divmod(config.batch_size, world * config.grad_accumulation)
    if remainder or micro_batch < 1:
        raise ValueError(
            f"batch_size {config.batch_size} must divide into {world} processes x "
            f"{config.grad_accumulation} accumulation steps"
        )
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    # Data: rank 0 builds the memory-mapped arrays once; the others wait, then map them.
    model_config, loss_config = preset(config.preset, **config.model_overrides)
    loss_config = type(loss_config).from_dict({**loss_config.to_dict(), **config.loss_overrides})
    check_record_size(data_root=config.data_root, sources=config.sources, split="train",
                      image_size=model_config.image_size, model=f"preset {config.preset!r}",
                      upsample=config.upsample_records)  # fmt: skip
    cache = run_dir / "data-cache"
    prepare = dict(
        data_root=config.data_root,
        sources=config.sources,
        split="train",
        encoder_name=config.encoder,
        max_lengths=config.max_lengths,
        image_size=model_config.image_size,
        cache_dir=cache,
    )
    if rank == 0:
        with progress_bar(desc="preparing training arrays", unit="img", leave=False) as bar:
            folder = prepare_arrays(**prepare, progress=bar.update)
    if world > 1:
        dist.barrier()
    arrays = TrainingArrays.load(folder if rank == 0 else prepare_arrays(**prepare))

    # Networks, the loss and optimisers of the architecture. Every rank starts from rank 0's weights.
    build = xmcgan_parts
    if model_config.architecture == "mirrorgan":
        from .mirrorgan.training import mirrorgan_parts as build
    parts = build(config, model_config, loss_config, arrays, device)
    model_config, generator, discriminator = parts.model_config, parts.generator, parts.discriminator
    broadcast_module(generator)
    broadcast_module(discriminator)
    generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    loss = parts.make_loss(
        torch.compile(generator) if config.compile else generator,
        torch.compile(discriminator) if config.compile else discriminator,
    )
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.g_lr, betas=config.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.d_lr, betas=config.betas)

    # Resume: the newest checkpoint that verifies.
    images_seen, step = 0, 0
    checkpoint = load_latest_checkpoint(run_dir / "checkpoints")
    if checkpoint:
        generator.load_state_dict(checkpoint.weights["generator"])
        generator_ema.load_state_dict(checkpoint.weights["generator_ema"])
        discriminator.load_state_dict(checkpoint.weights["discriminator"])
        opt_g.load_state_dict(checkpoint.state["opt_g"])
        opt_d.load_state_dict(checkpoint.state["opt_d"])
        images_seen, step = checkpoint.state["images_seen"], checkpoint.state["step"]
        torch.set_rng_state(checkpoint.state["rng_cpu"])
        if rank == 0:
            log.info("resumed from %s at %d images", checkpoint.folder, images_seen)

    if rank == 0 and reporter:
        reporter.on_start(
            config=config.to_dict(),
            model_config=model_config.to_dict(),
            parameters={
                "generator": sum(p.numel() for p in generator.parameters()),
                "discriminator": sum(p.numel() for p in discriminator.parameters()),
            },
        )

    # Fixed captions and fixed noise for the sample grid: the same every tick and across resumes.
    sample_rng = np.random.default_rng([config.seed, 7])
    sample_images = sample_rng.choice(len(arrays), size=min(config.sample_count, len(arrays)), replace=False)
    sample_rows = [int(arrays.caption_offsets[i]) for i in sample_images]
    sample_text = parts.sample_text(sample_rows)
    sample_z = torch.randn(len(sample_rows), model_config.z_dim, generator=torch.Generator().manual_seed(config.seed))

    loader = torch.utils.data.DataLoader(
        parts.dataset,
        batch_sampler=rank_batches(
            start=images_seen, global_batch=config.batch_size // config.grad_accumulation, rank=rank, world_size=world
        ),
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
    )
    batches = iter(loader)
    bf16 = trains_in_bf16(config, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    if rank == 0:
        log.info("training in %s", "bf16 autocast" if bf16 else "fp32")
    global_micro = config.batch_size // config.grad_accumulation

    def step_noise(*, phase: int, micro: int) -> torch.Tensor:
        """This rank's share of the noise of (step, phase, micro-batch): the same for any process count."""
        return noise(
            seed=config.seed,
            step=step,
            phase=phase,
            micro=micro,
            global_batch=global_micro,
            z_dim=model_config.z_dim,
            rank=rank,
            world=world,
        ).to(device)

    def save(images: int) -> None:
        if rank == 0:
            save_checkpoint(
                run_dir / "checkpoints",
                images_seen=images,
                keep=config.keep_checkpoints,
                config=config.to_dict(),
                weights={
                    "generator": generator.state_dict(),
                    "generator_ema": generator_ema.state_dict(),
                    "discriminator": discriminator.state_dict(),
                },
                state={
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "images_seen": images,
                    "step": step,
                    "rng_cpu": torch.get_rng_state(),
                },
            )
        if world > 1:
            dist.barrier()

    start_time, tick_start, tick_images_start = time.time(), time.time(), images_seen
    next_tick = (images_seen // config.tick_images + 1) * config.tick_images
    next_checkpoint = (images_seen // config.checkpoint_images + 1) * config.checkpoint_images
    tick, tick_terms = 0, {}
    bar = progress_bar(
        total=config.total_images,
        initial=images_seen,
        unit="img",
        desc=f"training {config.preset}"
        + (f" (or {config.time_limit_minutes:g} min)" if config.time_limit_minutes else ""),
        disable=rank != 0,
        mininterval=2.0,
    )
    generator.train()
    discriminator.train()
    stopped_early = False
    while images_seen < config.total_images:
        scale = lr_scale(config, images_seen=images_seen)
        set_lr(opt_d, config.d_lr * scale)
        set_lr(opt_g, config.g_lr * scale)
        # Discriminator phase: fresh real images each D step.
        for d_step in range(config.d_steps_per_g_step):
            micro_batches = [parts.to_device(next(batches), device) for _ in range(config.grad_accumulation)]
            d_noise = functools.partial(step_noise, phase=d_step)
            phase_step(loss.discriminator_loss, discriminator, opt_d, micro_batches, noise=d_noise, autocast=autocast,
                       terms=tick_terms)  # fmt: skip
            images_seen += config.batch_size

        # Generator phase on the last D step's images and captions, with new noise.
        g_noise = functools.partial(step_noise, phase=config.d_steps_per_g_step)
        phase_step(loss.generator_loss, generator, opt_g, micro_batches, noise=g_noise, autocast=autocast,
                   terms=tick_terms)  # fmt: skip
        ema_update(generator_ema, generator, decay=ema_decay(config, images_seen=images_seen))
        step += 1
        bar.update(config.batch_size * config.d_steps_per_g_step)

        # Tick: losses and throughput, samples now and then, the time limit.
        if images_seen >= next_tick or images_seen >= config.total_images:
            now = time.time()
            stats = mean_across_ranks({k: v[0] / v[1] for k, v in tick_terms.items()}, device)
            stats["images_per_second"] = (images_seen - tick_images_start) / max(now - tick_start, 1e-9)
            stats["seconds_per_tick"] = now - tick_start
            tick_terms, tick_start, tick_images_start = {}, now, images_seen
            next_tick += config.tick_images * math.ceil((images_seen - next_tick + 1) / config.tick_images)
            tick += 1
            if rank == 0:
                bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items() if k in ("d_total", "g_total")})
                if reporter:
                    reporter.on_tick(images_seen=images_seen, stats=stats)
                    if tick % config.sample_every_ticks == 0:
                        reporter.on_samples(
                            images_seen=images_seen,
                            grid=sample_grid(generator_ema, sample_text, sample_z),
                            captions=[arrays.captions[r] for r in sample_rows],
                        )
            out_of_time = config.time_limit_minutes > 0 and now - start_time > 60 * config.time_limit_minutes
            if any_rank(out_of_time, device):
                stopped_early = True
                log.info("time limit of %.1f minutes reached at %d images", config.time_limit_minutes, images_seen)
                break
        if images_seen >= next_checkpoint:
            save(images_seen)
            next_checkpoint += config.checkpoint_images * math.ceil(
                (images_seen - next_checkpoint + 1) / config.checkpoint_images
            )
    bar.close()

    save(images_seen)
    wall = time.time() - start_time
    summary = {
        "images_seen": images_seen,
        "steps": step,
        "wall_seconds": wall,
        "stopped_by_time_limit": stopped_early,
        "precision": "bf16 autocast" if bf16 else "fp32",
        "model_dir": str(run_dir / "model"),
    }
    if rank == 0:
        provenance = {**config.provenance, "images_seen": images_seen}
        publish_folder(run_dir / "model", lambda folder: parts.write_model(folder, generator_ema, provenance))
        if reporter:
            reporter.on_samples(
                images_seen=images_seen,
                grid=sample_grid(generator_ema, sample_text, sample_z),
                captions=[arrays.captions[r] for r in sample_rows],
            )
            reporter.on_end(model_dir=run_dir / "model", summary=summary)
    return summary


def phase_step(
    phase_loss: Callable,
    network: torch.nn.Module,
    optimiser,
    micro_batches: list,
    *,
    noise: Callable,
    autocast,
    terms: dict,
) -> None:
    """One optimiser step of a phase (`loss.discriminator_loss` or `loss.generator_loss`) on one global
    batch, given as this rank's micro-batches of (real, text): each micro-batch's loss, with
    `noise(micro=i)` as z and under `autocast`, is back-propagated at 1 / len(micro_batches), then the
    gradients are averaged over ranks and `optimiser` steps. What `train` runs per phase, and what the
    benchmarks time (benchmarks/bench_model.py, benchmarks/gpu_check.py); the phase's loss terms are
    added to `terms`."""
    optimiser.zero_grad(set_to_none=True)
    for micro, (real, text) in enumerate(micro_batches):
        z = noise(micro=micro)
        with autocast:
            loss, step_terms = phase_loss(real=real, text=text, z=z)
        (loss / len(micro_batches)).backward()
        _accumulate(terms, step_terms)
    average_gradients(network)
    optimiser.step()


def _accumulate(totals: dict[str, list[float]], terms: dict[str, float]) -> None:
    for key, value in terms.items():
        total = totals.setdefault(key, [0.0, 0])
        total[0] += float(value)
        total[1] += 1


@torch.no_grad()
def sample_grid(generator: torch.nn.Module, text: TextEmbedding, z: torch.Tensor, *, columns: int = 8) -> np.ndarray:
    """Images of `generator` for fixed text and noise, tiled into one uint8 (H, W, 3) grid."""
    images = generator(z.to(text.sentence.device), text).clamp(-1, 1).add(1).mul(127.5).round().byte().cpu()
    rows = math.ceil(len(images) / columns)
    padded = torch.zeros(rows * columns, *images.shape[1:], dtype=torch.uint8)
    padded[: len(images)] = images
    grid = padded.view(rows, columns, *images.shape[1:]).permute(0, 3, 1, 4, 2)  # rows, H, columns, W, channels
    return grid.reshape(rows * images.shape[2], columns * images.shape[3], 3).numpy()
