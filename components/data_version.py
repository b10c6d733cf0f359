"""The version of a dataset: its DVC hash, computed by DVC's own hashing code.

For a folder this is the ".dir" md5 that `dvc add` writes into a .dvc file and `dvc repro` into
dvc.lock (the md5 of DVC's sorted JSON listing of relative paths and file md5s); for a file, the
file's md5. Logging it beside a model ties the model to an exact entry of data.dvc / dvc.lock.
"""

from __future__ import annotations

import uuid
from pathlib import Path


def data_version(path: str | Path) -> str:
    """The DVC hash of a local file or folder, e.g. "1293f5319653b23ae00b1451def71785.dir".

    `.dvcignore` rules are not applied: point it at the dataset folder itself.
    """
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"cannot compute the data version of {path}: it does not exist")
    # dry_run hashes without copying files; the in-memory staging area holds only the .dir listing, dropped after.
    memory, staging_path = MemoryFileSystem(), f"/data-version-{uuid.uuid4().hex}"
    try:
        _, _, obj = build(HashFileDB(memory, staging_path), str(path), LocalFileSystem(), "md5", dry_run=True)
    finally:
        if memory.exists(staging_path):
            memory.rm(staging_path, recursive=True)
    return obj.hash_info.value
