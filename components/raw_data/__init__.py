"""The raw inputs of a pipeline run and their version."""

from .run import DVC_RAW_PATH, MANIFEST, demo_config, input_root, raw_data_version, resolve_raw_data

__all__ = ["DVC_RAW_PATH", "MANIFEST", "demo_config", "input_root", "raw_data_version", "resolve_raw_data"]
