"""The embed configuration: one validated object from params.yaml, the CLI or a caller."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from model.data import DEFAULT_MAX_LENGTHS, SOURCES
from model.text_encoder import DEFAULT_TEXT_ENCODER

from ..ingest.config import absolute, beam_problems


@dataclass(frozen=True)
class EmbedConfig:
    data_root: str  # ingest's output root: records/ are read from it, embeddings/ written under it
    output_root: str = ""  # where embeddings/ go instead (a pipeline step's own output); "": data_root
    sources: tuple[str, ...] = ("coco", "ln_coco")
    encoder: str = DEFAULT_TEXT_ENCODER  # a transformers encoder by hub name or local path
    max_lengths: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_LENGTHS))  # tokens, per source
    batch_size: int = 64
    shard_bytes: int = 64 << 20  # target bytes of a Parquet file: a folder gets as many as its rows need
    runner: str = "DirectRunner"
    local_workers: int = 1  # workers of the local runners; the encoder already uses every core
    local_mode: str = "threads"
    beam_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "data_root", absolute(str(self.data_root)))
        set_(self, "output_root", absolute(str(self.output_root)) if self.output_root else self.data_root)
        set_(self, "sources", tuple(self.sources))
        set_(self, "beam_args", tuple(self.beam_args))
        set_(self, "max_lengths", {**DEFAULT_MAX_LENGTHS, **dict(self.max_lengths)})
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

    @classmethod
    def from_dict(cls, values: dict) -> EmbedConfig:
        if unknown := set(values) - {f.name for f in fields(cls)}:
            raise ValueError(f"unknown embed options {sorted(unknown)}")
        return cls(**values)
