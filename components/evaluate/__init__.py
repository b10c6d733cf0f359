"""Evaluation: FID / KID (torch-fidelity, TF-Inception features), R-precision, caption accuracy, report."""

from .config import EvalConfig
from .data import CaptionSet, choose_caption_set, read_records
from .dual_encoder import DualEncoder, DualEncoderConfig, dual_encoder_for
from .fidelity import TF_INCEPTION, create_extractor, extract_features, fid_kid
from .rprecision import CLIPEncoder, ImageTextEncoder, r_precision
from .run import Generate, evaluate, generator_from_model_dir, generator_from_pipeline

__all__ = [
    "TF_INCEPTION",
    "CLIPEncoder",
    "CaptionSet",
    "DualEncoder",
    "DualEncoderConfig",
    "EvalConfig",
    "Generate",
    "ImageTextEncoder",
    "choose_caption_set",
    "create_extractor",
    "dual_encoder_for",
    "evaluate",
    "extract_features",
    "fid_kid",
    "generator_from_model_dir",
    "generator_from_pipeline",
    "r_precision",
    "read_records",
]
