"""STEM's vocabulary and caption ids, as AttnGAN's datasets.py makes them (MirrorGAN uses that code).

A caption's words are its lower-cased `\\w+` runs with non-ASCII characters dropped (the authors'
RegexpTokenizer(r'\\w+') and ascii filter). Id 0 is the end token, which also pads; every other
word of the vocabulary has its own id, unknown words are dropped. A caption keeps at most
`max_words` words: a longer one keeps a random order-preserving subset (get_caption). The
vocabulary is built on the training split only (the authors pool train and test captions).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

END = "<end>"
VOCABULARY_FILE = "vocabulary.json"
_WORD = re.compile(r"\w+")


def tokenize(caption: str) -> list[str]:
    """The caption's words: lower-cased \\w+ runs, non-ASCII characters removed, empty ones skipped."""
    words = (token.encode("ascii", "ignore").decode("ascii") for token in _WORD.findall(caption.lower()))
    return [word for word in words if word]


@dataclass(frozen=True)
class Vocabulary:
    """Word i + 1 of `words` has id i + 1; id 0 is END (and padding)."""

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {word: i + 1 for i, word in enumerate(self.words)})

    @classmethod
    def build(cls, captions: Iterable[str]) -> Vocabulary:
        """Every word of the captions (the authors keep every word: count >= 0), in first-seen order."""
        return cls(tuple(dict.fromkeys(word for caption in captions for word in tokenize(caption))))

    def __len__(self) -> int:
        return len(self.words) + 1

    def ids(self, caption: str) -> list[int]:
        """Ids of the caption's known words, in order (unknown words dropped)."""
        return [self._ids[word] for word in tokenize(caption) if word in self._ids]

    def encode(self, caption: str, *, max_words: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
        """(ids (max_words,) int64, zero-padded; number of words), at most max_words of them.

        A longer caption keeps a random order-preserving subset of its words, drawn from `rng`, or,
        without one, from a stream seeded by the caption's text (the same ids every time it is encoded)."""
        ids = self.ids(caption)
        if len(ids) > max_words:
            rng = rng or np.random.default_rng(zlib.crc32(caption.encode()))
            ids = [ids[i] for i in np.sort(rng.permutation(len(ids))[:max_words])]
        padded = np.zeros(max_words, dtype=np.int64)
        padded[: len(ids)] = ids
        return padded, len(ids)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i - 1] if i > 0 else END for i in ids]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / VOCABULARY_FILE
        path.write_text(json.dumps({"end": END, "words": list(self.words)}))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Vocabulary:
        path = Path(directory) / VOCABULARY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {VOCABULARY_FILE} in {directory}")
        return cls(tuple(json.loads(path.read_text())["words"]))
