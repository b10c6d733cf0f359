"""Merge processed-data roots (records/, counts/, dead_letter/, embeddings/ of several sources) into one."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path


def merge_roots(roots: list[str | Path], destination: str | Path) -> Path:
    """Hard-link (or copy, across filesystems) every file of `roots` into `destination` at the same
    relative path. A path present in two roots must hold identical bytes (e.g. encoder.json)."""
    destination = Path(destination)
    for root in map(Path, roots):
        for source in sorted(p for p in root.rglob("*") if p.is_file()):
            target = destination / source.relative_to(root)
            if target.exists():
                if not filecmp.cmp(source, target, shallow=False):
                    raise ValueError(f"{source.relative_to(root)} differs between merged roots ({source}, {target})")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
    return destination
