"""R-precision as the MirrorGAN paper reports it: ranked by DAMSM's image and sentence codes.

A generated image's cosine with its caption's STEM sentence code is ranked against captions of
other images (the same draws as the independent R-precision: rprecision.py), by DAMSM's image
code (the Inception trunk's pooled features through DAMSM's linear layer). This is the paper's
protocol, reported beside the independent encoder's and never gated: the XMC-GAN paper shows it is
biased, since DAMSM takes part in training AttnGAN-family models (MirrorGAN's STEM is DAMSM's text
encoder), and such scores can exceed real images'. The DAMSM is the one the pretrain step trains
on the same data version and settings (the same cache folder), or a folder given explicitly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.mirrorgan.config import DAMSMConfig
from model.mirrorgan.damsm import DAMSM, InceptionTrunk
from model.mirrorgan.pretraining import to_signed

from .fidelity import default_tf_inception_path
from .rprecision import caption_pool, score_images

PROTOCOL = "MirrorGAN paper: DAMSM image and sentence codes (biased toward DAMSM-trained models; not gated)"


class DAMSMEncoder:
    """DAMSM as an ImageTextEncoder (rprecision.py): L2-normalised image codes and STEM sentence codes."""

    def __init__(self, folder: str | Path, *, batch_size: int = 16):
        self.folder = Path(folder)
        self.damsm = DAMSM.load(self.folder)
        self.text_encoder = self.damsm.text_encoder()
        self.trunk = InceptionTrunk(default_tf_inception_path(), image_size=self.damsm.config.image_size)
        self.batch_size = batch_size

    @torch.no_grad()
    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        codes = []
        for start in range(0, len(images), self.batch_size):
            _, pooled = self.trunk(to_signed(images[start : start + self.batch_size]))
            codes.append(self.damsm.image_encoder.code(pooled))
        return F.normalize(torch.cat(codes), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        chunks = [self.text_encoder(texts[i : i + 256]).sentence for i in range(0, len(texts), 256)]
        return F.normalize(torch.cat(chunks), dim=-1)

    def describe(self) -> dict:
        return {"kind": "damsm", "name": self.folder.name, "version": self.folder.name, "protocol": PROTOCOL}


def damsm_encoder_for(config, *, data_root, data_version: str, log=print) -> DAMSMEncoder:
    """The evaluation's DAMSM (EvalConfig): `damsm_dir` when given, else the one the pretrain step trains
    (or trains now) on the evaluated source's training split under cache_dir/pretrain."""
    if config.damsm_dir:
        return DAMSMEncoder(config.damsm_dir)
    from components.pretrain import damsm_for

    folder = damsm_for(
        data_root=data_root, sources=(config.source,), data_version=data_version,
        config=DAMSMConfig.from_dict(dict(config.damsm)), cache_dir=Path(config.cache_dir) / "pretrain", log=log,
    )  # fmt: skip
    return DAMSMEncoder(folder)


def damsm_scores(image_sets: dict, captions: list[str], records, set_rows: list[int], encoder, config) -> dict:
    """{image set: {damsm_r_precision, damsm_r_precision_std}} over the same candidates and repeats as the
    independent R-precision."""
    pool, owned_by_record = caption_pool(records.captions)
    pool_embeddings = encoder.encode_texts(pool)
    scores = {}
    for name, images in image_sets.items():
        result = score_images(
            encoder, images, captions, pool, pool_embeddings, owned_by_record[set_rows],
            candidates=config.rprecision_candidates, repeats=config.rprecision_repeats, seed=config.seed,
        )  # fmt: skip
        scores[name] = {"damsm_r_precision": result["r_precision"], "damsm_r_precision_std": result["r_precision_std"]}
    return scores
