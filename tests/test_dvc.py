"""DVC: `dvc repro` builds the datasets from the demo in a fresh repository, push/pull round-trips through a
local remote, a parameter change re-runs only the stages it affects, and data_version() is DVC's own hash.

Everything runs in a temporary copy of the project (code, dvc.yaml, params.yaml shrunk to a tiny demo),
never in this checkout's DVC state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.data_version import data_version
from components.lineage import project_files_imported

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "demo": {"train_images": 12, "val_images": 4, "image_size": 32},
    "ingest": {"image_size": 32, "shard_bytes": 8192, "sources": ["coco"]},
    "embed": {"batch_size": 16},
    "validate": {"image_size": 32, "split_min_images": {"train": 12, "val": 4}, "sources": ["coco"]},
}


def run(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` in dvc.yaml: this venv
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(repo, sys.executable, "-m", "dvc", *args, check=check)


def stage_status(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed (data.dvc is left out: data/raw is empty until users bring data)."""
    return set(json.loads(dvc(repo, "status", "--json").stdout or "{}")) - {"data.dvc"}


def lock_outs(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def set_param(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_every_stage_depends_on_the_code_it_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(stages) == {"demo_data", "ingest", "embed", "validate"}
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        entry = stage["cmd"].split("python -m ", 1)[1].split()[0]
        deps = [d for d in stage["deps"] if "${" not in d]
        imported = project_files_imported(f"{entry}.__main__")
        assert f"{entry.replace('.', '/')}/__main__.py" in imported
        missing = {f for f in imported if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)}
        assert not missing, f"dvc.yaml stage {name!r} runs {sorted(missing)} but does not list them in its deps"


def test_the_import_walk_finds_relative_and_package_imports():
    files = project_files_imported("components.embed.__main__")
    # relative (..cli, .pipeline), absolute (components.beam_io, model.text_encoder) and packages run on the way
    for expected in ("components/cli.py", "components/embed/run.py", "components/beam_io.py",
                     "model/text_encoder.py", "components/ingest/__init__.py", "components/__init__.py"):  # fmt: skip
        assert expected in files, expected


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A fresh repository holding the project's code and DVC files, reproduced once on a tiny demo."""
    repo = tmp_path_factory.mktemp("clone")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("components", "model"):
        shutil.copytree(REPO / folder, repo / folder, ignore=ignore)
    for name in ("dvc.yaml", "data.dvc", ".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (repo / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "git", "init", "-q")
    done = dvc(repo, "repro")
    assert "Running stage 'validate'" in done.stdout
    return repo


@pytest.mark.slow
def test_repro_builds_every_dataset_from_the_demo(built):
    processed = built / "data" / "processed"
    shards = {}
    for split in ("train", "val"):
        names = sorted(p.name for p in (processed / "records" / "coco" / split).glob("part-*.parquet"))
        shards[split] = n = len(names)
        assert names == [f"part-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert shards["train"] > 1  # 12 records of ~2 kB at 8 kB per shard: the count follows the size
    counts = json.loads((processed / "counts" / "coco.json").read_text())
    assert counts["splits"]["train"]["images"] == {"in": 12, "written": 12, "rejected": 0}
    assert list((processed / "dead_letter" / "coco").glob("*.jsonl"))
    embeddings = processed / "embeddings" / "sentence-transformers--all-MiniLM-L6-v2-L17"
    assert (embeddings / "encoder.json").is_file() and (embeddings / "coco" / "val").is_dir()
    assert json.loads((processed / "validation" / "validation.json").read_text())["success"] is True
    assert stage_status(built) == set()


@pytest.mark.slow
def test_data_version_is_the_hash_dvc_records(built, tmp_path):
    outs = lock_outs(built)
    assert data_version(built / "data" / "demo") == outs["data/demo"]
    assert data_version(built / "data" / "processed" / "records" / "coco") == outs["data/processed/records/coco"]
    assert data_version(built / "data" / "processed" / "embeddings") == outs["data/processed/embeddings"]
    assert (
        data_version(built / "data" / "processed" / "counts" / "coco.json") == outs["data/processed/counts/coco.json"]
    )
    # and what `dvc add` writes for a folder
    shutil.copytree(built / "data" / "demo", built / "extra")
    dvc(built, "add", "extra")
    added = yaml.safe_load((built / "extra.dvc").read_text())["outs"][0]["md5"]
    assert added.endswith(".dir") and data_version(built / "extra") == added
    dvc(built, "remove", "extra.dvc")
    shutil.rmtree(built / "extra")


@pytest.mark.slow
def test_demo_regenerates_byte_for_byte_on_a_clean_checkout(built):
    before = lock_outs(built)["data/demo"]
    shutil.rmtree(built / "data" / "demo")
    done = dvc(built, "repro", "--force", "demo_data")  # really run the generator, not a checkout from the cache
    assert "Running stage 'demo_data'" in done.stdout
    assert lock_outs(built)["data/demo"] == before == data_version(built / "data" / "demo")


@pytest.mark.slow
def test_a_parameter_change_reruns_only_the_stages_it_affects(built):
    set_param(built, "ingest", "resize", "center_crop")
    assert stage_status(built) == {"ingest@coco"}  # not the demo; embed and validate follow if the records change
    set_param(built, "ingest", "resize", "stretch")
    threshold = yaml.safe_load((built / "params.yaml").read_text())["validate"]["max_dead_letter_fraction"]
    set_param(built, "validate", "max_dead_letter_fraction", threshold / 2)
    assert stage_status(built) == {"validate"}
    planned = dvc(built, "repro", "--dry").stdout
    assert "Running stage 'validate'" in planned
    assert not any(f"Running stage '{s}'" in planned for s in ("demo_data", "ingest@coco", "embed"))
    set_param(built, "validate", "max_dead_letter_fraction", threshold)


@pytest.mark.slow
def test_push_and_pull_round_trip_through_a_local_remote(built, tmp_path):
    before = lock_outs(built)
    dvc(built, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    dvc(built, "push")
    shutil.rmtree(built / "data")
    shutil.rmtree(built / ".dvc" / "cache")
    dvc(built, "pull")
    assert stage_status(built) == set()
    assert data_version(built / "data" / "processed" / "embeddings") == before["data/processed/embeddings"]
    assert json.loads((built / "data" / "processed" / "validation" / "validation.json").read_text())["success"]


@pytest.mark.slow
def test_data_dvc_versions_raw_data_users_bring(built, tmp_path):
    raw = built / "data" / "raw" / "coco" / "annotations"
    raw.mkdir(parents=True)
    (raw / "captions_train2017.json").write_text('{"images": [], "annotations": []}')
    entry = yaml.safe_load((built / "data.dvc").read_text())
    entry["outs"][0].pop("cache")  # the README's steps for real data
    (built / "data.dvc").write_text(yaml.safe_dump(entry, sort_keys=False))
    dvc(built, "commit", "-f", "data.dvc")
    out = yaml.safe_load((built / "data.dvc").read_text())["outs"][0]
    assert out["md5"] == data_version(built / "data" / "raw") and out["desc"].startswith("Raw inputs")
    dvc(built, "remote", "add", "-f", "-d", "raw", str(tmp_path / "remote"))
    dvc(built, "push", "data.dvc")
    shutil.rmtree(built / "data" / "raw")
    shutil.rmtree(built / ".dvc" / "cache")
    dvc(built, "pull", "data.dvc")
    assert (raw / "captions_train2017.json").is_file()
