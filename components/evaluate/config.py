"""The evaluation's one config object; params.yaml's `eval` section and the CLI both feed it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from model.data import DEFAULT_MAX_LENGTHS, SOURCES, SPLITS
from model.mirrorgan.config import DAMSMConfig

from .dual_encoder import DualEncoderConfig
from .fidelity import RESIZES, TF_INCEPTION
from .protocol import DEMO, PAPER, PROTOCOLS

DUAL = "dual"


@dataclass(frozen=True)
class EvalConfig:
    # what is scored
    protocol: str = DEMO  # "demo" or "paper" (XMC-GAN's: 30,000 samples of COCO-2014 val, 3 runs): protocol.py
    source: str = "coco"  # records/<source>/<split> of the processed data
    split: str = "val"
    # None takes the protocol's value (protocol.PROTOCOLS); a value given here overrides it, and the report says
    # whether the result is still comparable to the paper's
    num_samples: int | None = None  # generated images = (image, caption) pairs of the fixed caption set
    runs: int | None = None  # generations of the caption set with noise seeds seed, seed + 1, ...; scores: their mean
    seed: int = 0  # chooses the caption set and the (first run's) generation noise
    caption_set: str | None = None  # an existing caption_set.json to score on (else chosen from data and seed)
    generation_batch: int = 32
    # FID / KID
    extractor: str = TF_INCEPTION  # any torch-fidelity extractor name, e.g. inception-v3-compat (needs weights)
    extractor_weights: str | None = None  # weights file; None: the offline TF-Inception package file
    resize: str = "tf1-bilinear"  # how images reach 299x299: one of RESIZES
    feature_batch: int = 16
    kid_subset_size: int = 100
    kid_subsets: int = 100
    # R-precision
    rprecision_encoder: str = DUAL  # "dual" (trained here) or a transformers CLIP hub name / folder
    rprecision_candidates: int = 100
    rprecision_repeats: int = 10
    # DualEncoderConfig or its fields; its token length defaults to the source's (COCO 17, narratives 64),
    # so a Localized Narratives caption is read whole and the embed step's vectors are reused
    dual_encoder: DualEncoderConfig | dict = field(default_factory=dict)
    # The MirrorGAN paper's R-precision (DAMSM codes, components/evaluate/damsm.py): reported, never gated
    damsm_rprecision: bool = False
    damsm: dict = field(default_factory=dict)  # DAMSMConfig fields: the pretrain step's, so its DAMSM is reused
    damsm_dir: str | None = None  # a pretrained DAMSM folder to score with (default: trained on the data, cached)
    # report
    demo_shapes: bool = False  # data is the demo shapes dataset: also score caption_accuracy
    grid_captions: int = 8  # fixed captions shown in the sample grid
    untrained_baseline: bool = False  # also score a randomly initialised generator of the same architecture
    cache_dir: str = "data/cache/evaluate"  # real-image features, trained dual encoders

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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown eval config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)
