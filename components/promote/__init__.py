"""Promotion: the gate (thresholds, no regression against the champion) and the MLflow model registry."""

from .gate import Decision, GateConfig, decide
from .promotion import crown, promote
from .registry import CHALLENGER, CHAMPION, download_model, load_champion

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
