"""Promotion on a real sqlite MLflow registry: versions with scores and lineage, `challenger` on every
new version, `champion` only through the gate; loading `models:/NAME@champion` gives a sampler."""

import json
import shutil

import numpy as np
import pytest
import torch

from components.promote import CHALLENGER, CHAMPION, GateConfig, crown, load_champion, promote
from components.promote.__main__ import main as promote_cli
from components.promote.registry import client, scores_on, version_by_alias
from model.config import ModelConfig
from model.generator import Generator
from model.sampling import write_model_folder
from model.text_encoder import DEFAULT_TEXT_ENCODER

GATE = GateConfig(max_fid=50.0, min_rprecision=0.3, fid_tolerance=2.0, rprecision_tolerance=0.02)
NAME = "xmcgan-test"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An initialised, empty sqlite store (creating the schema takes most of a new store's first second)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    client(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def registry(empty_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever MLflow writes relative to the working folder stays in tmp_path
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def make_model(folder, *, seed: int, run_id: str):
    torch.manual_seed(seed)
    config = ModelConfig(
        image_size=16, z_dim=8, text_dim=384, g_base=4, g_channels=(2, 1), d_base=4, d_channels=(1, 2, 2),
        attention_size=8, region_size=8,
    )  # fmt: skip
    provenance = {"training_run_id": run_id, "data_version": "train-data-1", "code_version": "abc123"}
    text_encoder = {"name": DEFAULT_TEXT_ENCODER, "max_length": 17}
    return write_model_folder(folder, generator=Generator(config), text_encoder=text_encoder, provenance=provenance)


def evaluation(model_dir, fid, rprecision, *, key="eval-1"):
    """An evaluate-step summary with the fields promotion reads (the scores are the gate's inputs here)."""
    provenance = json.loads((model_dir / "config.json").read_text())["provenance"]
    return {
        "model": {"path": str(model_dir), "provenance": provenance},
        "data_version": "val-data-1",
        "data_root": "unused",
        "caption_set": {"id": "set-1", "size": 10, "path": "unused"},
        "evaluation_key": key,
        "scores": {"model": {"fid": fid, "kid_mean": 0.01, "r_precision": rprecision, "r_precision_std": 0.01}},
        "produced_by": {
            "extractor": {"name": "tf-inception-2015-12-05", "weights_sha256": "7f" * 32, "resize": "tf1-bilinear"},
            "num_generated": 10,
            "num_real": 20,
            "image_size": 16,
            "rprecision_encoder": {"kind": "dual", "name": "dual-0123", "version": "0123"},
            "rprecision": {"candidates": 100, "repeats": 10},
        },
        "config": {},
    }


def run(registry, tmp_path, model_dir, fid, rprecision, *, key="eval-1", gate=GATE, **kwargs):
    return promote(
        evaluation=evaluation(model_dir, fid, rprecision, key=key),
        name=NAME,
        tracking_uri=registry,
        out_dir=tmp_path / f"decision-{model_dir.name}",
        gate=gate,
        log=lambda message: None,
        **kwargs,
    )


def aliases(registry):
    mlflow_client = client(registry)
    return {
        alias: str(version.version) if (version := version_by_alias(mlflow_client, NAME, alias)) else None
        for alias in (CHAMPION, CHALLENGER)
    }


def test_first_model_ever_becomes_champion_with_scores_and_lineage(registry, tmp_path):
    model_dir = make_model(tmp_path / "m1", seed=1, run_id="train-run-1")
    summary = run(registry, tmp_path, model_dir, 40.0, 0.5)
    assert summary["promote"] and summary["version"] == "1" and summary["champion_version"] == "1"
    assert aliases(registry) == {CHAMPION: "1", CHALLENGER: "1"}
    version = client(registry).get_model_version(NAME, "1")
    assert version.source == f"runs:/{summary['run_id']}/model" and version.run_id == summary["run_id"]
    assert version.tags["training_run_id"] == "train-run-1"
    assert version.tags["data_version"] == "val-data-1" and version.tags["training_data_version"] == "train-data-1"
    assert version.tags["evaluation_set"] == "set-1" and version.tags["evaluation_key"] == "eval-1"
    assert version.tags["code_version"] == "abc123" and version.tags["gate"] == "passed"
    assert version.tags["eval.extractor"] == "tf-inception-2015-12-05" and version.tags["eval.num_generated"] == "10"
    assert version.tags["eval.extractor_sha256"] == "7f" * 32 and version.tags["eval.rprecision_encoder"] == "0123"
    assert float(version.tags["metric.fid"]) == 40.0 and float(version.tags["metric.r_precision"]) == 0.5
    assert scores_on(version, "eval-1")["fid"] == 40.0
    assert "FID 40" in version.description and "train-run-1" in version.description
    decision = json.loads((tmp_path / "decision-m1" / "decision.json").read_text())
    assert decision["promote"] is True and decision["champion"] is None
    assert set(decision) == {"promote", "reasons", "candidate", "champion", "thresholds"}
    run_data = client(registry).get_run(summary["run_id"]).data
    assert run_data.metrics["gate_passed"] == 1.0 and run_data.tags["gate.promote"] == "True"


def test_first_model_failing_the_thresholds_gets_no_champion(registry, tmp_path):
    summary = run(registry, tmp_path, make_model(tmp_path / "m1", seed=1, run_id="r1"), 80.0, 0.5)
    assert not summary["promote"] and summary["champion_version"] is None
    assert aliases(registry) == {CHAMPION: None, CHALLENGER: "1"}
    assert any(r.startswith("FAIL: FID 80") for r in summary["reasons"])
    assert client(registry).get_model_version(NAME, "1").tags["gate"] == "failed"


def test_a_worse_candidate_leaves_the_champion_untouched(registry, tmp_path):
    run(registry, tmp_path, make_model(tmp_path / "m1", seed=1, run_id="r1"), 30.0, 0.6)
    before = client(registry).get_model_version(NAME, "1")
    summary = run(registry, tmp_path, make_model(tmp_path / "m2", seed=2, run_id="r2"), 33.0, 0.6)
    assert not summary["promote"]
    assert "FAIL: FID 33 vs champion v1 30: worse than tolerance 2" in summary["reasons"]
    assert aliases(registry) == {CHAMPION: "1", CHALLENGER: "2"}
    after = client(registry).get_model_version(NAME, "1")
    assert (after.source, after.tags, after.description) == (before.source, before.tags, before.description)


def test_a_candidate_not_worse_than_the_champion_takes_over(registry, tmp_path):
    run(registry, tmp_path, make_model(tmp_path / "m1", seed=1, run_id="r1"), 30.0, 0.6)
    summary = run(registry, tmp_path, make_model(tmp_path / "m2", seed=2, run_id="r2"), 31.0, 0.59)
    assert summary["promote"] and aliases(registry) == {CHAMPION: "2", CHALLENGER: "2"}
    assert any("champion v1" in r and "within tolerance" in r for r in summary["reasons"])


def test_a_champion_without_scores_on_this_evaluation_is_rescored(registry, tmp_path):
    run(registry, tmp_path, make_model(tmp_path / "m1", seed=1, run_id="r1"), 30.0, 0.6, key="old-eval")
    scored = []

    def score_champion(model_dir):
        scored.append(sorted(p.name for p in model_dir.iterdir()))
        return {"evaluation_key": "new-eval", "fid": 20.0, "r_precision": 0.7}

    summary = run(
        registry, tmp_path, make_model(tmp_path / "m2", seed=2, run_id="r2"), 25.0, 0.7,
        key="new-eval", score_champion=score_champion,
    )  # fmt: skip
    assert scored == [["config.json", "generator.safetensors"]]  # the champion's own registered folder
    assert not summary["promote"] and aliases(registry)[CHAMPION] == "1"
    assert "FAIL: FID 25 vs champion v1 20: worse than tolerance 2" in summary["reasons"]
    assert scores_on(client(registry).get_model_version(NAME, "1"), "new-eval")["fid"] == 20.0

    # scores are kept: the next candidate on the same evaluation is compared without re-scoring
    summary = run(
        registry, tmp_path, make_model(tmp_path / "m3", seed=3, run_id="r3"), 21.0, 0.7,
        key="new-eval", score_champion=score_champion,
    )  # fmt: skip
    assert len(scored) == 1 and summary["promote"] and aliases(registry)[CHAMPION] == "3"


def test_without_rescoring_an_incomparable_champion_blocks_promotion(registry, tmp_path):
    run(registry, tmp_path, make_model(tmp_path / "m1", seed=1, run_id="r1"), 30.0, 0.6, key="old-eval")
    gate = GateConfig(**{**GATE.to_dict(), "reevaluate_champion": False})
    summary = run(registry, tmp_path, make_model(tmp_path / "m2", seed=2, run_id="r2"), 10.0, 0.9, key="new", gate=gate)
    assert not summary["promote"] and aliases(registry) == {CHAMPION: "1", CHALLENGER: "2"}
    assert any("cannot compare" in r for r in summary["reasons"])


def test_loading_the_champion_gives_a_generator_ready_to_sample(registry, tmp_path):
    model_dir = make_model(tmp_path / "m1", seed=1, run_id="r1")
    run(registry, tmp_path, model_dir, 30.0, 0.6)
    pipeline = load_champion(NAME, tracking_uri=registry)
    images = pipeline(["a red circle on the left", "a blue square"], seed=3)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
    assert pipeline.provenance["training_run_id"] == "r1"
    from model.sampling import TextToImage

    assert np.array_equal(
        images, TextToImage.from_pretrained(model_dir)(["a red circle on the left", "a blue square"], seed=3)
    )


def test_cli_promotes_from_an_evaluation_file(registry, tmp_path, capsys):
    model_dir = make_model(tmp_path / "m1", seed=1, run_id="r1")
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(evaluation(model_dir, 40.0, 0.5)))
    promote_cli(["--evaluation", str(path), "--name", NAME, "--tracking-uri", registry, "--max-fid", "35"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["promote"] is False and summary["reasons"][0] == "FAIL: FID 40 > 35"
    assert json.loads((tmp_path / "decision.json").read_text())["thresholds"]["max_fid"] == 35.0
    with pytest.raises(SystemExit):
        promote_cli(["--evaluation", str(path), "--min-rprecision", "2"])


def test_the_pipeline_gate_decides_and_crown_moves_the_champion(registry, tmp_path):
    """The pipeline's two steps: promote(move_champion=False) registers and decides; crown() acts on a pass."""
    run(registry, tmp_path, make_model(tmp_path / "m1", seed=1, run_id="r1"), 30.0, 0.6)
    passed = run(registry, tmp_path, make_model(tmp_path / "m2", seed=2, run_id="r2"), 29.0, 0.6, move_champion=False)
    failed = run(registry, tmp_path, make_model(tmp_path / "m3", seed=3, run_id="r3"), 90.0, 0.6, move_champion=False)
    assert passed["promote"] and not failed["promote"]
    assert aliases(registry) == {CHAMPION: "1", CHALLENGER: "3"}
    with pytest.raises(ValueError, match="did not pass the gate"):
        crown(NAME, version=failed["version"], tracking_uri=registry)
    assert aliases(registry)[CHAMPION] == "1"
    assert crown(NAME, version=passed["version"], tracking_uri=registry) == "1"
    assert aliases(registry)[CHAMPION] == "2"


def test_a_promote_run_again_after_a_kill_registers_no_second_version(registry, tmp_path, monkeypatch):
    """Killed after registering the version and before moving the aliases: the re-run finds that
    version and finishes as an uninterrupted run would (one version, champion on it)."""
    model_dir = make_model(tmp_path / "m1", seed=1, run_id="train-run-1")
    mlflow_client_class = type(client(registry))
    original = mlflow_client_class.set_registered_model_alias

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # the kill, right after create_model_version

    monkeypatch.setattr(mlflow_client_class, "set_registered_model_alias", killed)
    with pytest.raises(KeyboardInterrupt):
        run(registry, tmp_path, model_dir, 40.0, 0.5)
    assert aliases(registry) == {CHAMPION: None, CHALLENGER: None}
    monkeypatch.setattr(mlflow_client_class, "set_registered_model_alias", original)
    summary = run(registry, tmp_path, model_dir, 40.0, 0.5)
    assert summary["version"] == "1" and aliases(registry) == {CHAMPION: "1", CHALLENGER: "1"}
    assert len(client(registry).search_model_versions(f"name='{NAME}'")) == 1
    other = run(registry, tmp_path, make_model(tmp_path / "m2", seed=2, run_id="train-run-2"), 40.0, 0.5)
    assert other["version"] == "2"  # another trained model is another version
