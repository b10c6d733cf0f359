"""STEM, MirrorGAN's semantic text embedding module: AttnGAN's DAMSM text encoder (RNN_ENCODER).

    ids (b, T) -> Embedding(V, 300), U(-0.1, 0.1) -> dropout 0.5 -> bi-LSTM, 128 units a direction
    words (b, T, 256):  the per-step outputs (zero past a caption's length)
    sentence (b, 256):  the final hidden states of both directions, concatenated

Pretrained with DAMSM's image encoder (model/mirrorgan/pretraining.py), then frozen: in eval mode
(no dropout) and without gradients wherever the GAN uses it. `STEMTextEncoder` puts the
vocabulary in front, so it takes caption strings like XMC-GAN's TextEncoder does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from safetensors.torch import load_model, save_model
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..text_encoder import TextEmbedding
from .config import DAMSMConfig
from .vocabulary import Vocabulary

STEM_WEIGHTS = "text_encoder.safetensors"


@dataclass
class EncodedCaptions(TextEmbedding):
    """STEM's words, mask and sentence, with the caption ids they came from (STREAM's targets)."""

    ids: torch.Tensor = None  # (b, T) int64, 0-padded
    lengths: torch.Tensor = None  # (b,) int64, at least 1

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> EncodedCaptions:
        base = super().to(device, dtype)
        return EncodedCaptions(base.words, base.mask, base.sentence, self.ids.to(device), self.lengths.to(device))

    def __getitem__(self, index) -> EncodedCaptions:
        base = super().__getitem__(index)
        return EncodedCaptions(base.words, base.mask, base.sentence, self.ids[index], self.lengths[index])


class STEM(nn.Module):
    """forward(ids (b, T) int64, lengths (b,)) -> TextEmbedding; every length must be at least 1."""

    def __init__(self, *, vocab_size: int, config: DAMSMConfig):
        super().__init__()
        self.vocab_size, self.config = vocab_size, config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        # The authors also pass dropout=0.5 to this one-layer LSTM, where torch ignores it.
        self.rnn = nn.LSTM(config.embedding_dim, config.text_dim // 2, batch_first=True, bidirectional=True)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # LSTM: torch's own initialisation, as the authors

    @property
    def dim(self) -> int:
        return self.config.text_dim

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> TextEmbedding:
        if ids.ndim != 2 or lengths.shape != ids.shape[:1] or int(lengths.min()) < 1:
            raise ValueError(f"STEM needs ids (b, T) and lengths (b,) >= 1, got {tuple(ids.shape)}, {lengths.tolist()}")
        steps = ids.shape[1]
        packed = pack_padded_sequence(
            self.dropout(self.embedding(ids)), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        output, (hidden, _) = self.rnn(packed)
        words, _ = pad_packed_sequence(output, batch_first=True, total_length=steps)
        mask = torch.arange(steps, device=ids.device)[None] < lengths[:, None]
        return TextEmbedding(words, mask, rearrange(hidden, "direction b h -> b (direction h)"))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / STEM_WEIGHTS
        save_model(self, str(path), metadata={"format": "pt"})
        return path

    @classmethod
    def load(cls, directory: str | Path, *, vocab_size: int, config: DAMSMConfig, device="cpu") -> STEM:
        path = Path(directory) / STEM_WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(f"no {STEM_WEIGHTS} in {directory}")
        stem = cls(vocab_size=vocab_size, config=config)
        load_model(stem, str(path), strict=True, device=str(device))
        return stem.to(device)


def caption_ids(
    captions: list[str], vocabulary: Vocabulary, *, max_words: int, rngs: list | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (b, max_words) and lengths (b,) of captions; one with no known word becomes the END token
    alone (length 1), which is what the generator then sees (the server refuses such prompts)."""
    rows, lengths = [], []
    for i, caption in enumerate(captions):
        ids, length = vocabulary.encode(caption, max_words=max_words, rng=rngs[i] if rngs else None)
        rows.append(ids)
        lengths.append(max(length, 1))
    return torch.from_numpy(np.stack(rows)), torch.tensor(lengths, dtype=torch.int64)


class STEMTextEncoder(nn.Module):
    """The frozen STEM behind its vocabulary: caption strings in, EncodedCaptions out.

    Same interface as model.text_encoder.TextEncoder (name, dim, max_length, device, __call__)."""

    def __init__(self, stem: STEM, vocabulary: Vocabulary, *, name: str = "stem"):
        super().__init__()
        if stem.vocab_size != len(vocabulary):
            raise ValueError(f"STEM has {stem.vocab_size} word embeddings, the vocabulary {len(vocabulary)} ids")
        self.stem = stem.eval().requires_grad_(False)
        self.vocabulary, self.name = vocabulary, name
        self.max_length = stem.config.max_words
        self.dim = stem.dim

    def train(self, mode: bool = True) -> STEMTextEncoder:
        return super().train(False)  # frozen: dropout stays off

    @property
    def device(self) -> torch.device:
        return next(self.stem.parameters()).device

    def known_words(self, caption: str) -> int:
        return len(self.vocabulary.ids(caption))

    @torch.no_grad()
    def forward(self, captions: list[str], *, rngs: list | None = None) -> EncodedCaptions:
        ids, lengths = caption_ids(list(captions), self.vocabulary, max_words=self.max_length, rngs=rngs)
        return self.encode_ids(ids.to(self.device), lengths.to(self.device))

    @torch.no_grad()
    def encode_ids(self, ids: torch.Tensor, lengths: torch.Tensor) -> EncodedCaptions:
        text = self.stem(ids, lengths)
        return EncodedCaptions(text.words, text.mask, text.sentence, ids, lengths)
