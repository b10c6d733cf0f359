"""The pretraining step's one config object; params.yaml's `pretrain` section and the CLI both feed it."""

from __future__ import annotations

from dataclasses import dataclass

from model.config import PRESETS
from model.data import SOURCES
from model.mirrorgan.config import DAMSMConfig, StreamConfig
from model.settings import DictConfig, setting


@dataclass(frozen=True)
class PretrainConfig(DictConfig):
    data_root: str = setting(help="processed data root (records/<source>/train from ingest)")
    out: str = setting(help="output folder: damsm/, stream/, pretrained.json")
    preset: str = setting(
        "mirrorgan-32", help="the MirrorGAN preset to pretrain for (STREAM learns on images of its size)"
    )
    image_size: int | None = setting(None, help="the generator's image size, when model overrides change the preset's")
    sources: tuple[str, ...] = setting(("coco",), help="sources to pretrain on, YAML list")
    damsm: dict = setting(
        factory=dict, help="DAMSMConfig fields, YAML map (image_size, epochs, batch_size, lr, gammas, ...)"
    )
    stream: dict = setting(factory=dict, help="StreamConfig fields, YAML map (vgg_layer, input_size, epochs, ...)")
    cache_dir: str = setting(
        "data/cache/pretrain", help="where pretrained networks are kept by data version and settings, and reused"
    )
    data_version: str = setting("", help="data version the cache is keyed by (default: the DVC hash of --data-root)")

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
