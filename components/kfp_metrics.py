"""A kfp Metrics output that also exists as a file.

`Metrics.log_metric` only sets the artifact's metadata; nothing is written at its path. kfp's
local cache treats an output whose path is missing as a cache miss, so a step with a metrics
output would re-run every time. Writing the same figures as JSON at the path keeps the cache
working and gives a person a file to read.
"""

import json
from pathlib import Path


def log_metrics(metrics, figures: dict) -> None:
    """Log each figure on the kfp `metrics` artifact and write them all to its path as JSON."""
    for name, value in figures.items():
        metrics.log_metric(name, value)
    path = Path(metrics.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics.metadata, indent=2, sort_keys=True))
