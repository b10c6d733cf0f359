"""Embed (Apache Beam): caption token and sentence embeddings from the frozen text encoder."""

from .config import EmbedConfig
from .run import run_embed

__all__ = ["EmbedConfig", "run_embed"]
