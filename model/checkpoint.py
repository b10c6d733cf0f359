"""Atomic, verifiable training checkpoints.

A checkpoint is a folder `ckpt-<images seen, 12 digits>/` holding
    generator.safetensors, generator_ema.safetensors, discriminator.safetensors   (weights)
    state.pt        optimiser states, counters, RNG states: torch.load(weights_only=True)
    config.json     the run's resolved configuration
    manifest.json   sha256 of every file above, written last
It is written into a temporary folder and renamed into place, so a folder with that name is
always complete; the manifest catches later corruption (a truncated copy, a bad disk). Loading
takes the newest checkpoint that verifies and says which ones it skipped and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)
WEIGHT_FILES = ("generator", "generator_ema", "discriminator")
_NAME = re.compile(r"^ckpt-(\d{12})$")


@dataclass
class Checkpoint:
    folder: Path
    weights: dict[str, dict[str, torch.Tensor]]  # WEIGHT_FILES -> state dict
    state: dict  # optimisers, counters, RNG states
    config: dict


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _contiguous(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}


def save_checkpoint(
    directory: str | Path, *, images_seen: int, weights: dict[str, dict], state: dict, config: dict, keep: int = 3
) -> Path:
    """Write checkpoint `ckpt-<images_seen>` atomically into `directory`; keep the newest `keep`."""
    directory = Path(directory)

    def write(tmp: Path) -> None:
        for name in WEIGHT_FILES:
            save_file(_contiguous(weights[name]), tmp / f"{name}.safetensors")
        torch.save(state, tmp / "state.pt")
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        files = sorted(p.name for p in tmp.iterdir())
        (tmp / "manifest.json").write_text(
            json.dumps({"images_seen": images_seen, "sha256": {f: _sha256(tmp / f) for f in files}})
        )

    final = publish_folder(directory / f"ckpt-{images_seen:012d}", write)
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def publish_folder(final: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` fills a temporary sibling folder, whose files reach the disk before it is renamed
    to `final`: a folder with the final name is always complete (a kill leaves only the temporary)."""
    final = Path(final)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint folders, oldest first (by images seen)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _NAME.match(p.name)), key=lambda p: p.name)


def verify(folder: Path) -> str | None:
    """None when every file matches the manifest, else what is wrong."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return "no manifest.json (incomplete write)"
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest["sha256"]
    except (json.JSONDecodeError, KeyError) as error:
        return f"unreadable manifest.json ({error})"
    for name in (*(f"{w}.safetensors" for w in WEIGHT_FILES), "state.pt", "config.json"):
        if name not in expected:
            return f"manifest lists no {name}"
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != digest:
            return f"{name} does not match its sha256 in the manifest (corrupted or partial)"
    return None


def load_latest_checkpoint(directory: str | Path) -> Checkpoint | None:
    """The newest checkpoint that verifies, or None when there is none."""
    for folder in reversed(list_checkpoints(directory)):
        if problem := verify(folder):
            log.warning("skipping checkpoint %s: %s", folder, problem)
            continue
        return Checkpoint(
            folder=folder,
            weights={name: load_file(folder / f"{name}.safetensors") for name in WEIGHT_FILES},
            state=torch.load(folder / "state.pt", map_location="cpu", weights_only=True),
            config=json.loads((folder / "config.json").read_text()),
        )
    return None
