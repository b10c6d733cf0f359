"""Prompt embeddings for the generator, kept for prompts seen before.

The text encoder is about half the work of a one-image request at the demo size, and many
requests repeat a prompt with another seed. `PromptEmbeddings` holds each prompt's own rows of
the encoder output (words, mask, sentence), least recently used dropped first, within a bound on
entries and on bytes. A hit returns the very tensor values the encoder gave, so an image is the
same with or without the cache. It is used from the generator thread only, so it takes no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

from model.text_encoder import TextEmbedding

from .metrics import PROMPT_BYTES, PROMPT_ENTRIES, PROMPT_LOOKUPS


def row_bytes(row: TextEmbedding) -> int:
    return sum(t.numel() * t.element_size() for t in (row.words, row.mask, row.sentence))


def own_row(embedding: TextEmbedding, i: int) -> TextEmbedding:
    """Row i as tensors of its own: a view would keep the whole batch's storage alive."""
    return TextEmbedding(embedding.words[i].clone(), embedding.mask[i].clone(), embedding.sentence[i].clone())


def stack_rows(rows: Sequence[TextEmbedding]) -> TextEmbedding:
    return TextEmbedding(
        torch.stack([r.words for r in rows]),
        torch.stack([r.mask for r in rows]),
        torch.stack([r.sentence for r in rows]),
    )


class PromptEmbeddings:
    """`lookup(prompts)` gives one embedding row per prompt, encoding only those not held."""

    def __init__(self, encode: Callable[[list[str]], list[TextEmbedding]], *, max_entries: int, max_bytes: int):
        self.encode = encode  # distinct prompts -> one row each
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._rows: OrderedDict[str, TextEmbedding] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, prompts: Sequence[str]) -> dict[str, TextEmbedding]:
        distinct = list(dict.fromkeys(prompts))
        found = {p: self._rows[p] for p in distinct if p in self._rows}
        for prompt in found:
            self._rows.move_to_end(prompt)
        missing = [p for p in distinct if p not in found]
        PROMPT_LOOKUPS.labels("hit").inc(len(found))
        if missing:
            PROMPT_LOOKUPS.labels("miss").inc(len(missing))
            for prompt, row in zip(missing, self.encode(missing), strict=True):
                found[prompt] = row
                self._keep(prompt, row)
        return found

    def _keep(self, prompt: str, row: TextEmbedding) -> None:
        size = row_bytes(row)
        if self.max_entries == 0 or size > self.max_bytes:
            return
        self._rows[prompt] = row
        self.bytes += size
        while len(self._rows) > self.max_entries or self.bytes > self.max_bytes:
            _, dropped = self._rows.popitem(last=False)
            self.bytes -= row_bytes(dropped)
        PROMPT_ENTRIES.set(len(self._rows))
        PROMPT_BYTES.set(self.bytes)
