"""The whole pipeline run locally on a tiny configuration (kfp SubprocessRunner, no cluster):
a passing gate promotes and deploys (a real server answers a real request); a failing gate then
registers the candidate as challenger and leaves the champion and the deploy untouched."""

import json

import pytest
from mlflow import MlflowClient
from PIL import Image
from pipeline_support import TINY_RUN

from pipelines.xmcgan_pipeline import run_local


@pytest.mark.slow
def test_pipeline_runs_end_to_end_reuses_unchanged_steps_and_a_failing_gate_changes_nothing(tmp_path):
    passing = run_local(parameters={**TINY_RUN, "gate": {"max_fid": 10_000.0, "min_rprecision": 0.0}}, output=tmp_path)
    run_dir = tmp_path / "pipeline-root" / passing["run_dir"].split("/")[-1]
    assert passing["ingest"]["coco"]["images_in"] == 124
    assert passing["ingest"]["coco"]["images_in"] == (
        passing["ingest"]["coco"]["images_written"] + passing["ingest"]["coco"]["images_rejected"]
    )
    assert passing["validation"]["checks_failed"] == 0
    assert passing["training"]["images_seen"] == 32
    assert passing["evaluation"]["metrics"]["fid"] > 0 and 0 <= passing["evaluation"]["metrics"]["r_precision"] <= 1
    assert passing["gate"]["promote"] is True and passing["registered_version"] == "1"
    deployed = passing["deploy"]
    assert deployed["model_uri"] == "models:/xmcgan/1" and deployed["url"].startswith("http://127.0.0.1:")
    image = Image.open(run_dir / "deploy" / "images" / deployed["files"][0])
    assert image.size == (32, 32)  # the demo preset's native size, served over HTTP

    client = MlflowClient(passing["tracking_uri"])
    assert str(client.get_model_version_by_alias("xmcgan", "champion").version) == "1"
    training_run = client.get_run(passing["training"]["mlflow_run_id"])
    assert training_run.data.tags["data_version"].endswith(".dir")

    assert passing["reused_from_cache"] == []
    # Only the gate's thresholds change: every step before it is reused, the gate itself runs again.
    failing = run_local(parameters={**TINY_RUN, "gate": {"max_fid": 0.001, "min_rprecision": 0.0}}, output=tmp_path)
    assert failing["reused_from_cache"] == ["embed", "evaluate", "ingest", "raw-data", "train", "validate"]
    assert failing["training"]["mlflow_run_id"] == passing["training"]["mlflow_run_id"]
    assert failing["gate"]["promote"] is False and failing["registered_version"] == "2"
    assert any(reason.startswith("FAIL: FID") for reason in failing["gate"]["reasons"])
    assert failing["deploy"] is None
    second_run = tmp_path / "pipeline-root" / failing["run_dir"].split("/")[-1]
    assert not (second_run / "promote").exists() and not (second_run / "deploy").exists()
    assert str(client.get_model_version_by_alias("xmcgan", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("xmcgan", "challenger").version) == "2"
    assert json.loads((second_run / "summary.json").read_text())["registered_version"] == "2"


@pytest.mark.slow
def test_a_changed_training_setting_reruns_training_and_what_follows_only(tmp_path):
    gate = {"max_fid": 10_000.0, "min_rprecision": 0.0}
    first = run_local(parameters={**TINY_RUN, "gate": gate}, output=tmp_path)
    longer = {**TINY_RUN, "gate": gate, "train": {**TINY_RUN["train"], "total_images": 48}}
    second = run_local(parameters=longer, output=tmp_path)
    assert second["reused_from_cache"] == ["embed", "ingest", "raw-data", "validate"]
    assert second["training"]["images_seen"] == 48 and first["training"]["images_seen"] == 32
    assert second["training"]["mlflow_run_id"] != first["training"]["mlflow_run_id"]
