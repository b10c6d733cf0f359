"""Where an artifact came from: the code version that made it (data versions: components.data_version)."""

from __future__ import annotations

import ast
import hashlib
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


def _module_file(name: str) -> Path:
    path = REPO.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def project_files_imported(entry: str) -> set[str]:
    """Every project file that importing module `entry` executes: its imports (also those inside
    functions), transitively, with the __init__.py of every package on the way; read from the
    source, nothing is imported. Paths relative to the repository."""
    todo, seen = [entry], set()
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if not path.is_file() or path in seen:  # not a project module (a library, or a name inside a module)
            continue
        seen.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                todo += [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return {str(path.relative_to(REPO)) for path in seen}


def code_fingerprint(entry: str) -> str:
    """sha256 of the source of every project file module `entry` runs: it changes exactly when the
    code behind a step does (what keys a pipeline step's cache, pipelines/xmcgan_pipeline.py)."""
    digest = hashlib.sha256()
    for name in sorted(project_files_imported(entry)):
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]
