"""Promotion: the gate (thresholds, no regression against the champion) and the MLflow model registry."""

from .gate import Decision, GateConfig, decide
from .promote import promote
from .registry import CHALLENGER, CHAMPION, download_model, load_champion

__all__ = ["CHALLENGER", "CHAMPION", "Decision", "GateConfig", "decide", "download_model", "load_champion", "promote"]
