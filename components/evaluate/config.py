"""The evaluation's one config object; params.yaml's `eval` section and the CLI both feed it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model.data import DEFAULT_MAX_LENGTHS, SOURCES, SPLITS
from model.mirrorgan.config import DAMSMConfig
from model.settings import DictConfig, setting

from .dual_encoder import DualEncoderConfig
from .fidelity import RESIZES, TF_INCEPTION
from .protocol import DEMO, PAPER, PROTOCOLS

DUAL = "dual"


@dataclass(frozen=True)
class EvalConfig(DictConfig):
    # what is scored
    protocol: str = setting(
        DEMO,
        help="demo (200 samples, one run) or paper (XMC-GAN's: 30,000 samples of COCO-2014 val, mean of 3 runs); "
        "the report labels every score comparable to the paper's or not, and why",
    )
    source: str = setting("coco", help="records source to evaluate on: coco, ln_coco, ln_open_images")
    split: str = setting("val", help="records split: val or train")
    # None takes the protocol's value (protocol.PROTOCOLS); a value given here overrides it, and the report says
    # whether the result is still comparable to the paper's
    num_samples: int | None = setting(
        None, help="generated images, one per (image, caption) pair of the fixed caption set (default: the protocol's)"
    )
    runs: int | None = setting(
        None,
        help="generations of the caption set, noise seeds seed, seed + 1, ...; scores are the mean "
        "(default: the protocol's)",
    )
    seed: int = setting(0, help="seed of the caption set choice and of the generation noise")
    caption_set: str | None = setting(None, help="an existing caption_set.json to score on instead of choosing one")
    generation_batch: int = setting(32, help="captions per generator batch")
    # FID / KID
    extractor: str = setting(
        TF_INCEPTION, help="torch-fidelity feature extractor (tf-inception-2015-12-05, inception-v3-compat, ...)"
    )
    extractor_weights: str | None = setting(
        None, help="weights file of the extractor (required by inception-v3-compat)"
    )
    resize: str = setting("tf1-bilinear", help="resize to 299x299: tf1-bilinear or bicubic-antialias")
    feature_batch: int = setting(16, help="images per feature-extractor batch")
    kid_subset_size: int = setting(100, help="KID subset size (capped at the number of samples)")
    kid_subsets: int = setting(100, help="KID subsets")
    # R-precision
    rprecision_encoder: str = setting(
        DUAL, help="'dual' (trained here on the training split) or a CLIP hub name / folder"
    )
    rprecision_candidates: int = setting(
        100, help="captions ranked per image (its own and the rest drawn from other images)"
    )
    rprecision_repeats: int = setting(10, help="repeats of the negative draw")
    # DualEncoderConfig or its fields; its token length defaults to the source's (COCO 17, narratives 64),
    # so a Localized Narratives caption is read whole and the embed step's vectors are reused
    dual_encoder: DualEncoderConfig | dict = setting(
        factory=dict, help="dual encoder settings, YAML map (steps, dim, grid, input_size, backbone_weights, ...)"
    )
    # The MirrorGAN paper's R-precision (DAMSM codes, components/evaluate/damsm.py): reported, never gated
    damsm_rprecision: bool = setting(
        False, help="also report the MirrorGAN paper's R-precision by DAMSM codes (never gated)"
    )
    damsm: dict = setting(factory=dict, help="DAMSM settings, YAML map (those of the pretrain step share its DAMSM)")
    damsm_dir: str | None = setting(
        None, help="a pretrained DAMSM folder to score with (default: trained on the data, cached)"
    )
    # report
    demo_shapes: bool = setting(False, help="the data is the demo shapes dataset: also score caption accuracy")
    grid_captions: int = setting(8, help="fixed captions in the sample grid")
    untrained_baseline: bool = setting(
        False, help="also score a randomly initialised generator of the same architecture"
    )
    cache_dir: str = setting("data/cache/evaluate", help="cache of real-image features and trained dual encoders")

    def __post_init__(self) -> None:
        if isinstance(self.dual_encoder, dict):
            length = {"max_length": DEFAULT_MAX_LENGTHS.get(self.source, DualEncoderConfig.max_length)}
            object.__setattr__(self, "dual_encoder", DualEncoderConfig(**{**length, **self.dual_encoder}))
        problems = []
        if self.protocol not in PROTOCOLS:
            problems.append(f"protocol must be one of {sorted(PROTOCOLS)}, got {self.protocol!r}")
        protocol = PROTOCOLS.get(self.protocol, PROTOCOLS[DEMO])  # an unknown one still lets the rest be checked
        for name in ("num_samples", "runs"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(protocol, name))
        if self.protocol == PAPER and (self.source, self.split) != ("coco", "val"):
            problems.append(f"protocol paper scores COCO-2014 val (coco/val), got {self.source}/{self.split}")
        if self.source not in SOURCES:
            problems.append(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.split not in SPLITS:
            problems.append(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.resize not in RESIZES:
            problems.append(f"resize must be one of {RESIZES}, got {self.resize!r}")
        for name in ("num_samples", "runs", "generation_batch", "feature_batch", "kid_subset_size", "kid_subsets"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_samples < 2:
            problems.append(f"num_samples must be at least 2 (FID needs a covariance), got {self.num_samples}")
        if self.rprecision_candidates < 2 or self.rprecision_repeats < 1:
            problems.append("rprecision_candidates must be at least 2 and rprecision_repeats at least 1")
        if self.seed < 0:
            problems.append(f"seed must be non-negative, got {self.seed}")
        if self.grid_captions < 0:
            problems.append(f"grid_captions must be non-negative, got {self.grid_captions}")
        try:
            DAMSMConfig.from_dict(dict(self.damsm))
        except (TypeError, ValueError) as error:
            problems.append(f"damsm: {error}")
        if self.caption_set is not None and not Path(self.caption_set).is_file():
            problems.append(f"caption_set file not found: {self.caption_set}")
        if problems:
            raise ValueError("invalid eval config: " + "; ".join(problems))

    @property
    def seeds(self) -> tuple[int, ...]:
        """The generation noise seed of each run."""
        return tuple(self.seed + run for run in range(self.runs))
