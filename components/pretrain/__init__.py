"""The pretraining step: MirrorGAN's DAMSM (STEM) and STREAM on the ingested training split, cached."""

from .config import PretrainConfig
from .run import damsm_for, pretrain, run_pretraining, stream_for

__all__ = ["PretrainConfig", "damsm_for", "pretrain", "run_pretraining", "stream_for"]
