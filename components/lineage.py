"""Where an artifact came from: the code version that made it (data versions: components.data_version)."""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """The git commit of this checkout (with "-dirty" for uncommitted changes), else the package version.

    A container image built from the repository has no .git: it carries XMCGAN_CODE_VERSION
    (set at image build time) instead.
    """

    if env := os.environ.get("XMCGAN_CODE_VERSION"):
        return env
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        try:
            return "xmcgan-mlops==" + metadata.version("xmcgan-mlops")
        except metadata.PackageNotFoundError:
            return "unknown"
