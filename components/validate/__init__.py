"""Validate (Great Expectations): schema, nulls, caption lengths, unique ids, image sizes, captions per image,
dead-letter fraction, split sizes and caption embeddings of the ingested data; a JSON report and the Data Docs
page Great Expectations renders of the validation."""

from .config import ValidateConfig
from .report import failure_lines
from .run import run_validate

__all__ = ["ValidateConfig", "failure_lines", "run_validate"]
