"""save_pretrained / from_pretrained for the networks: a folder with config.json and safetensors.

config.json is a JSON object whose "model" entry is the ModelConfig dict; other entries (the
text encoder, provenance: see model/sampling.py) are kept when a network is saved into a folder
that already has them. Each network writes its own weights file, so a generator and a
discriminator can share one folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import torch
from safetensors.torch import load_model, save_model

from .config import ModelConfig

CONFIG_NAME = "config.json"


def read_folder_config(directory: str | Path) -> dict:
    """The config.json object of a model folder, with a clear error when it is missing or malformed."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in model folder {directory}")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(values, dict) or not isinstance(values.get("model"), dict):
        raise ValueError(f"{path} must be a JSON object with a 'model' object (the ModelConfig)")
    return values


def write_folder_config(directory: str | Path, **entries: object) -> None:
    """Set `entries` in the folder's config.json, keeping the entries already there."""
    path = Path(directory) / CONFIG_NAME
    values = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**values, **entries}, indent=2) + "\n")


class PretrainedMixin:
    """For an nn.Module built from `config` (a `config_class`) whose weights go to `weights_name`."""

    weights_name: str
    config_class: type = ModelConfig  # MirrorGAN's networks: MirrorGANConfig
    config: ModelConfig

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_folder_config(directory, model=self.config.to_dict())
        save_model(self, str(directory / self.weights_name), metadata={"format": "pt"})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> Self:
        """The network saved in `directory`, on `device`, in eval mode."""
        config = cls.config_class.from_dict(read_folder_config(directory)["model"])
        weights = Path(directory) / cls.weights_name
        if not weights.is_file():
            raise FileNotFoundError(f"no {cls.weights_name} in model folder {directory}")
        module = cls(config)
        load_model(module, str(weights), strict=True, device=str(device))
        return module.to(device).eval()
