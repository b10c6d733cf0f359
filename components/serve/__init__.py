"""The generator behind a KServe endpoint: V1 and V2 inference, validation, cross-request batching.

    python -m components.serve --model-uri models:/xmcgan@champion --tracking-uri sqlite:///mlflow.db

The predictor (kserve.Model) is components.serve.predictor.XMCGANPredictor; it is not imported
here because importing kserve parses sys.argv, which `python -m components.serve` must own.
"""

from .config import ServeConfig
from .loading import ModelSource, resolve_model_source

__all__ = ["ModelSource", "ServeConfig", "resolve_model_source"]
