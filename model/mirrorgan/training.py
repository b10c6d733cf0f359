"""MirrorGAN in the shared training loop (model/training.py): its part of an iteration.

The loop is the same as XMC-GAN's (data stream, checkpoints, EMA, ticks, reporting); MirrorGAN
brings its networks, its objective (model/mirrorgan/objective.py), a sample stream that adds the
caption's STEM ids, the frozen STEM that encodes each batch, and its model folder. STEM and STREAM
come pretrained from the pretrain step (components/pretrain): `TrainConfig.pretrained` is its
folder, holding damsm/ (STEM, vocabulary) and stream/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..config import MirrorGANConfig, MirrorGANLossConfig
from ..training_data import PositionStream, TrainingArrays
from .damsm import DAMSM
from .discriminator import MirrorGANDiscriminator
from .glam import MirrorGANGenerator
from .objective import MirrorGANLoss
from .sampling import write_mirrorgan_folder
from .stem import EncodedCaptions, STEMTextEncoder
from .stream import STREAM
from .vocabulary import Vocabulary

PRETRAINED_MANIFEST = "pretrained.json"


class MirrorGANStream(PositionStream):
    """PositionStream's image and caption choice, with the caption as STEM ids: position -> {image, ids, length}.

    A caption longer than max_words keeps a random order-preserving subset of its words, drawn
    from (seed, position) like everything else the stream gives."""

    def __init__(self, arrays: TrainingArrays, *, vocabulary: Vocabulary, max_words: int, seed: int, flip: bool):
        super().__init__(arrays, seed=seed, flip=flip)
        self.vocabulary, self.max_words = vocabulary, max_words

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        sample = super().__getitem__(position)
        caption = self.arrays.captions[int(sample["caption"])]
        rng = np.random.default_rng([self.seed, position, 2])
        ids, length = self.vocabulary.encode(caption, max_words=self.max_words, rng=rng)
        # a caption with no known word is the END token alone, as model/mirrorgan/stem.py caption_ids
        return {"image": sample["image"], "ids": torch.from_numpy(ids), "length": torch.tensor(max(length, 1))}


def load_pretrained(
    folder: str | Path, *, need_stream: bool, device: torch.device
) -> tuple[DAMSM, STREAM | None, dict]:
    """The pretrain step's DAMSM and STREAM (frozen) and its manifest; they must share one vocabulary."""
    folder = Path(folder or "")
    if not (folder / PRETRAINED_MANIFEST).is_file():
        raise FileNotFoundError(
            f"MirrorGAN needs its pretrained networks: {folder} holds no {PRETRAINED_MANIFEST}; run "
            "`python -m components.pretrain` and pass its output folder as --pretrained"
        )
    damsm = DAMSM.load(folder / "damsm", device=device)
    stream = None
    if need_stream:
        stream = STREAM.load(folder / "stream", device=device)
        if Vocabulary.load(folder / "stream") != damsm.vocabulary:
            raise ValueError(f"{folder}: DAMSM and STREAM were pretrained with different vocabularies")
    return damsm, stream, json.loads((folder / PRETRAINED_MANIFEST).read_text())


def mirrorgan_parts(config, model_config: MirrorGANConfig, loss_config: MirrorGANLossConfig, arrays, device):
    """The TrainingParts (model/training.py) of a MirrorGAN run."""
    from ..training import TrainingParts

    damsm, stream, manifest = load_pretrained(
        config.pretrained, need_stream=loss_config.stream_weight > 0, device=device
    )
    encoder: STEMTextEncoder = damsm.text_encoder().to(device)
    model_config = model_config.replace(text_dim=encoder.dim)
    torch.manual_seed(config.seed)
    generator = MirrorGANGenerator(model_config).to(device)
    discriminator = MirrorGANDiscriminator(model_config).to(device)

    def to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, EncodedCaptions]:
        ids, lengths = batch["ids"].to(device), batch["length"].to(device)
        return batch["image"].to(device, non_blocking=True), encoder.encode_ids(ids, lengths)

    def write_model(folder: Path, generator_ema: MirrorGANGenerator, provenance: dict) -> None:
        pretrained = {"pretrained_" + key: value for key, value in manifest.get("versions", {}).items()}
        write_mirrorgan_folder(
            folder, generator=generator_ema, text_encoder=encoder, provenance={**provenance, **pretrained}
        )

    return TrainingParts(
        model_config=model_config,
        generator=generator,
        discriminator=discriminator,
        make_loss=lambda g, d: MirrorGANLoss(generator=g, discriminator=d, stream=stream, config=loss_config),
        dataset=MirrorGANStream(
            arrays,
            vocabulary=encoder.vocabulary,
            max_words=encoder.max_length,
            seed=config.seed,
            flip=config.horizontal_flip,
        ),
        to_device=to_device,
        sample_text=lambda rows: encoder([arrays.captions[r] for r in rows]),
        write_model=write_model,
    )
