"""The generator behind a KServe endpoint: V1 and V2 inference, validation, cross-request batching.

python -m components.serve --model-uri models:/xmcgan@champion --tracking-uri sqlite:///mlflow.db
"""

from .config import ServeConfig
from .loading import ModelSource, resolve_model_source
from .predictor import XMCGANPredictor

__all__ = ["ModelSource", "ServeConfig", "XMCGANPredictor", "resolve_model_source"]
