"""The raw inputs of a pipeline run and their version.

Three ways in, one result (a folder with raw_data.json saying where the inputs are and their
DVC hash):
- a DVC repository and revision: `data/raw` fetched with DVC itself (the newest version when
  no revision is given: what scheduled retraining wants);
- a path or URL read in place (local, gs://, s3://: whatever Beam's filesystems read);
- nothing: the demo dataset, generated into the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from components.data_version import data_version

log = logging.getLogger(__name__)
DVC_RAW_PATH = "data/raw"
MANIFEST = "raw_data.json"


def resolve_raw_data(
    *, out: str | Path, raw_data_uri: str = "", dvc_repo: str = "", dvc_rev: str = "", demo: dict | None = None
) -> dict:
    """Materialise or point at the raw inputs; returns {"kind", "input_root", "data_version", ...}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if dvc_repo and raw_data_uri:
        raise ValueError("give either dvc_repo (DVC-tracked raw data) or raw_data_uri (data read in place), not both")
    if dvc_repo:
        from dvc.repo import Repo

        target = out / "raw"
        log.info("fetching %s from DVC repository %s at %s", DVC_RAW_PATH, dvc_repo, dvc_rev or "its newest revision")
        Repo.get(dvc_repo, DVC_RAW_PATH, out=str(target), rev=dvc_rev or None)
        summary = {
            "kind": "dvc",
            "input_root": str(target),
            "dvc_repo": dvc_repo,
            "dvc_rev": dvc_rev or "HEAD",
            "data_version": data_version(target),
        }
    elif raw_data_uri:
        local = "://" not in raw_data_uri or raw_data_uri.startswith("file://")
        path = raw_data_uri.removeprefix("file://")
        if local and not Path(path).is_dir():
            raise FileNotFoundError(f"raw_data_uri {raw_data_uri!r} is not a folder")
        # A bucket has no DVC hash without reading all of it: version remote data with DVC (dvc_repo) instead.
        version = data_version(path) if local else f"unversioned:{raw_data_uri}"
        summary = {"kind": "uri", "input_root": path if local else raw_data_uri, "data_version": version}
    else:
        from components.demo_data import write_demo_dataset

        target = out / "demo"
        write_demo_dataset(demo_config(demo, out=target))
        summary = {"kind": "demo", "input_root": str(target), "data_version": data_version(target)}
    (out / MANIFEST).write_text(json.dumps(summary, indent=2))
    log.info("raw data: %s", summary)
    return summary


def raw_data_version(*, raw_data_uri: str = "", dvc_repo: str = "", dvc_rev: str = "", demo: dict | None = None) -> str:
    """Which raw data a run would read, without fetching it: what keys the cached raw-data step.

    A DVC repository: its commit at `dvc_rev` (the newest when empty, so a new commit means new
    data); a local folder: its DVC hash; a bucket: its URL (unversioned, see resolve_raw_data);
    the demo: its settings and the code that draws it.
    """
    if dvc_repo:
        from dvc.repo import Repo

        with Repo.open(dvc_repo, rev=dvc_rev or None) as repo:
            return f"dvc:{dvc_repo}@{repo.scm.get_rev()}"
    if raw_data_uri:
        local = "://" not in raw_data_uri or raw_data_uri.startswith("file://")
        return data_version(raw_data_uri.removeprefix("file://")) if local else f"unversioned:{raw_data_uri}"
    from components.lineage import code_fingerprint

    settings = {k: v for k, v in demo_config(demo, out=Path()).to_dict().items() if k != "out"}
    settings = json.dumps({**settings, "code": code_fingerprint("components.demo_data.run")}, sort_keys=True)
    return "demo:" + hashlib.sha256(settings.encode()).hexdigest()[:16]


def demo_config(demo: dict | None, *, out: Path):
    """The demo dataset's config from the pipeline's `demo` settings (DemoDataConfig fields)."""
    from components.demo_data import DemoDataConfig
    from components.settings import step_config

    return step_config("demo", DemoDataConfig, demo or {}, out=out)


def input_root(raw_folder: str | Path) -> str:
    """Where the raw inputs of a resolved folder are (what ingest reads)."""
    manifest = Path(raw_folder) / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{raw_folder} has no {MANIFEST}: it was not written by resolve_raw_data")
    return json.loads(manifest.read_text())["input_root"]
