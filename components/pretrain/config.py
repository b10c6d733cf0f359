"""The pretraining step's one config object; params.yaml's `pretrain` section and the CLI both feed it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from model.config import PRESETS
from model.data import SOURCES
from model.mirrorgan.config import DAMSMConfig, StreamConfig


@dataclass(frozen=True)
class PretrainConfig:
    data_root: str
    out: str
    preset: str = "mirrorgan-64"  # the MirrorGAN preset to pretrain for: STREAM sees images at its size
    image_size: int | None = None  # the generator's image size when model overrides change it (None: the preset's)
    sources: tuple[str, ...] = ("coco",)
    damsm: dict = field(default_factory=dict)  # DAMSMConfig fields over the authors' defaults
    stream: dict = field(default_factory=dict)  # StreamConfig fields over the authors' defaults
    cache_dir: str = "data/cache/pretrain"
    data_version: str = ""  # empty: the DVC hash of data_root

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        problems = []
        if self.preset not in PRESETS or PRESETS[self.preset].architecture != "mirrorgan":
            mirrorgan = sorted(name for name, p in PRESETS.items() if p.architecture == "mirrorgan")
            problems.append(f"preset must be a MirrorGAN preset ({mirrorgan}), got {self.preset!r}")
        if not self.sources or set(self.sources) - set(SOURCES):
            problems.append(f"sources must be some of {SOURCES}, got {list(self.sources)}")
        for name, config_class in (("damsm", DAMSMConfig), ("stream", StreamConfig)):
            try:
                config_class.from_dict(dict(getattr(self, name)))
            except (TypeError, ValueError) as error:
                problems.append(f"{name}: {error}")
        if problems:
            raise ValueError("invalid pretrain config: " + "; ".join(problems))

    @property
    def damsm_config(self) -> DAMSMConfig:
        return DAMSMConfig.from_dict(dict(self.damsm))

    @property
    def stream_config(self) -> StreamConfig:
        return StreamConfig.from_dict(dict(self.stream))

    @property
    def stream_image_size(self) -> int:
        return self.image_size or PRESETS[self.preset].model.image_size

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> PretrainConfig:
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"unknown pretrain options {unknown}; known: {sorted(known)}")
        return cls(**values)
