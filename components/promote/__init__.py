"""Promotion: the gate (thresholds, no regression against the champion) and the MLflow model registry."""

from .config import GateConfig
from .gate import Decision, decide
from .registry import CHALLENGER, CHAMPION, download_model, load_champion
from .run import crown, promote

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "Decision",
    "GateConfig",
    "crown",
    "decide",
    "download_model",
    "load_champion",
    "promote",
]
