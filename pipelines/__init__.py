"""The Kubeflow pipeline (xmcgan_pipeline.py) and how a local run shows itself (console.py)."""

import logging

# Beam warns on import about optional Google Cloud clients it does not need here; with a handler
# on the root logger the warning goes nowhere instead of the terminal (a run's logs have their own).
logging.getLogger().addHandler(logging.NullHandler())
