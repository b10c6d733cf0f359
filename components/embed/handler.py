"""Beam model handler (ModelHandler) for the frozen text encoder: captions in, embeddings out, in fixed batches."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from model.text_encoder import TextEncoder

log = logging.getLogger(__name__)
PROGRESS_EVERY = 2000  # captions between progress lines, per worker


@dataclass(frozen=True)
class CaptionEmbedding:
    """One caption's encoding as bytes, the Parquet contract's form (EMBEDDING_SCHEMA)."""

    token_embeddings: bytes  # float16 (max_length, dim)
    attention_mask: bytes  # uint8 (max_length,)
    sentence_embedding: bytes  # float32 (dim,)


def encode_batch(model: TextEncoder, captions: Sequence[str]) -> list[CaptionEmbedding]:
    """One forward pass; each caption's arrays are copied out as bytes (a view would carry the whole batch)."""
    encoded = model(list(captions))
    words = encoded.words.half().cpu().numpy()
    mask = encoded.mask.cpu().numpy().astype(np.uint8)
    sentence = encoded.sentence.float().cpu().numpy()
    return [
        CaptionEmbedding(words[i].tobytes(), mask[i].tobytes(), sentence[i].tobytes()) for i in range(len(captions))
    ]


class TextEncoderHandler(ModelHandler[str, PredictionResult, TextEncoder]):
    """Loads model.text_encoder.TextEncoder once per worker; batches are exactly `batch_size` (the last one less)."""

    def __init__(self, *, encoder: str, max_length: int, batch_size: int):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self.batch_size = batch_size
        self.encoder = encoder
        self.max_length = max_length
        self.encoded = 0

    def load_model(self) -> TextEncoder:
        # float64, rounded once in encode_batch: the same bytes on every CPU (see pipeline.py)
        model = TextEncoder(self.encoder, max_length=self.max_length).double()
        log.info("embed: loaded %s (dim %d, %d tokens)", self.encoder, model.dim, self.max_length)
        return model

    def run_inference(
        self, batch: Sequence[str], model: TextEncoder, inference_args=None
    ) -> Iterable[PredictionResult]:
        """PredictionResult(example=caption, inference=CaptionEmbedding) per caption, in batch order."""
        embeddings = encode_batch(model, batch)
        results = [PredictionResult(caption, e) for caption, e in zip(batch, embeddings, strict=True)]
        before, self.encoded = self.encoded, self.encoded + len(batch)
        if before // PROGRESS_EVERY != self.encoded // PROGRESS_EVERY:
            log.info("embed: %d captions encoded at %d tokens by this worker", self.encoded, self.max_length)
        return results

    def get_num_bytes(self, batch: Sequence[str]) -> int:
        return sum(len(caption.encode()) for caption in batch)

    def get_metrics_namespace(self) -> str:
        return "embed"
