"""MirrorGAN through the project's steps on a tiny configuration: pretraining (cached by data version
and settings), the shared training loop (bit-exact resume after a kill), the DAMSM R-precision
beside the gated scores, a registry that keeps the families apart, a model folder served over HTTP."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from serve_support import ServerProcess
from test_fid import PIXEL_STATS  # registers the cheap test extractor with torch-fidelity

from components.pretrain import PretrainConfig, run_pretraining
from model.checkpoint import list_checkpoints, load_latest_checkpoint
from model.training import TrainConfig, train

pytestmark = pytest.mark.slow

# 48 training images of 32 px (conftest processed_demo): a 2-stage 16 -> 32 MirrorGAN, a small STEM
# on a 75 px Inception input (its least), STREAM on VGG-19's first block.
TINY_DAMSM = {"image_size": 75, "epochs": 2, "batch_size": 16, "text_dim": 16, "embedding_dim": 16}
TINY_STREAM = {"vgg_layer": "block1_pool", "input_size": 16, "epochs": 2, "batch_size": 16, "embed_dim": 8,
               "hidden_dim": 16}  # fmt: skip
TINY_MODEL = {"base_size": 16, "stages": 2, "g_base": 4, "d_base": 4, "noise_dim": 8, "condition_dim": 4}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def pretrained(processed_demo, cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrained")
    config = PretrainConfig(
        data_root=str(processed_demo), out=str(out), image_size=32, damsm=TINY_DAMSM, stream=TINY_STREAM,
        cache_dir=str(cache / "pretrain"), data_version="demo-v1",
    )  # fmt: skip
    run_pretraining(config)
    return out


def tiny_config(run_dir: Path, data_root: Path, pretrained: Path, **overrides) -> TrainConfig:
    values = dict(
        run_dir=str(run_dir), data_root=str(data_root), preset="mirrorgan-64", pretrained=str(pretrained),
        model_overrides=TINY_MODEL, batch_size=8, total_images=64, tick_images=16, checkpoint_images=32,
        sample_count=4, workers=0,
    )  # fmt: skip
    return TrainConfig.from_dict({**values, **overrides})


@pytest.fixture(scope="module")
def trained(processed_demo, pretrained, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    summary = train(tiny_config(run_dir, processed_demo, pretrained))
    assert summary["images_seen"] == 64 and summary["steps"] == 8  # one D and one G update per batch
    return run_dir


def test_pretraining_writes_damsm_and_stream_on_one_vocabulary_and_reuses_its_cache(
    processed_demo, pretrained, cache, tmp_path
):
    manifest = json.loads((pretrained / "pretrained.json").read_text())
    assert set(manifest["versions"]) == {"damsm", "stream"} and manifest["data_version"] == "demo-v1"
    assert (pretrained / "damsm" / "vocabulary.json").read_text() == (
        pretrained / "stream" / "vocabulary.json"
    ).read_text()
    history = json.loads((pretrained / "damsm" / "history.json").read_text())["history"]
    assert len(history) == 2 and history[1]["total"] < history[0]["total"]  # DAMSM learns
    logs = []
    again = PretrainConfig(
        data_root=str(processed_demo), out=str(tmp_path / "again"), image_size=32, damsm=TINY_DAMSM,
        stream=TINY_STREAM, cache_dir=str(cache / "pretrain"), data_version="demo-v1",
    )  # fmt: skip
    assert run_pretraining(again, log=logs.append)["versions"] == manifest["versions"]
    assert sum("from the cache" in line for line in logs) == 2
    with pytest.raises(ValueError, match="preset must be a MirrorGAN preset"):
        PretrainConfig(data_root="d", out="o", preset="cpu-64")


def test_training_without_pretrained_networks_says_what_to_run(processed_demo, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m components\.pretrain"):
        train(tiny_config(tmp_path / "run", processed_demo, tmp_path / "nothing"))
    with pytest.raises(ValueError, match="d_steps_per_g_step 1"):
        tiny_config(tmp_path / "run", processed_demo, tmp_path, d_steps_per_g_step=2)


def test_the_shared_loop_writes_a_mirrorgan_model_folder(trained, pretrained):
    from model.mirrorgan.sampling import MirrorGANTextToImage
    from model.sampling import TextToImage

    values = json.loads((trained / "model" / "config.json").read_text())
    assert values["architecture"] == "mirrorgan" and values["model"]["text_dim"] == 16
    manifest = json.loads((pretrained / "pretrained.json").read_text())
    assert values["provenance"]["pretrained_damsm"] == manifest["versions"]["damsm"]
    pipeline = TextToImage.from_pretrained(trained / "model")
    assert isinstance(pipeline, MirrorGANTextToImage)
    images = pipeline(["a red circle in the center"], seed=1, images_per_prompt=2)
    assert images.shape == (2, 32, 32, 3) and not np.array_equal(images[0], images[1])
    checkpoint = load_latest_checkpoint(trained / "checkpoints")
    assert checkpoint.state["images_seen"] == 64 and any(
        k.startswith("stages.1.") for k in checkpoint.weights["discriminator"]
    )


def _train_command(data_root: Path, run_dir: Path, pretrained: Path, total_images: int) -> list[str]:
    return [sys.executable, "-m", "components.train", "--data-root", str(data_root), "--run-dir", str(run_dir),
            "--tracking-uri", "none", "--preset", "mirrorgan-64", "--pretrained", str(pretrained),
            "--model-overrides", json.dumps(TINY_MODEL), "--batch-size", "8", "--total-images", str(total_images),
            "--checkpoint-images", "32", "--workers", "0"]  # fmt: skip


def test_a_killed_mirrorgan_run_resumes_to_identical_weights(processed_demo, pretrained, tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    subprocess.run(
        _train_command(processed_demo, reference, pretrained, 96), check=True, capture_output=True, timeout=600
    )
    process = subprocess.Popen(_train_command(processed_demo, interrupted, pretrained, 100_000),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not list_checkpoints(interrupted / "checkpoints") and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert 0 < load_latest_checkpoint(interrupted / "checkpoints").state["images_seen"] < 96
    subprocess.run(
        _train_command(processed_demo, interrupted, pretrained, 96), check=True, capture_output=True, timeout=600
    )
    for name in ("generator", "generator_ema", "discriminator"):
        expected = load_file(list_checkpoints(reference / "checkpoints")[-1] / f"{name}.safetensors")
        actual = load_file(list_checkpoints(interrupted / "checkpoints")[-1] / f"{name}.safetensors")
        assert expected.keys() == actual.keys()
        for key, tensor in expected.items():
            assert torch.equal(actual[key], tensor), f"{name}.{key} differs after resume"


@pytest.fixture(scope="module")
def evaluated(processed_demo, trained, cache, tmp_path_factory) -> dict:
    from components.evaluate import EvalConfig, evaluate

    settings = dict(
        num_samples=16, extractor=PIXEL_STATS, rprecision_candidates=8, rprecision_repeats=3, kid_subsets=5,
        cache_dir=str(cache), dual_encoder={"steps": 30, "batch_size": 16, "input_size": 64, "dim": 32},
        untrained_baseline=True, grid_captions=2,
    )  # fmt: skip
    logs, runs = [], {}
    for damsm in (False, True):
        config = EvalConfig(**settings, damsm_rprecision=damsm, damsm=TINY_DAMSM)
        out = tmp_path_factory.mktemp(f"eval-damsm-{damsm}")
        runs[damsm] = evaluate(
            data_root=processed_demo, out_dir=out, data_version="demo-v1", config=config, model_dir=trained / "model",
            log=logs.append,
        )  # fmt: skip
    return {"runs": runs, "logs": logs}


def test_damsm_r_precision_is_reported_for_every_image_set_beside_the_gated_scores(evaluated):
    with_damsm, without = evaluated["runs"][True], evaluated["runs"][False]
    assert any("DAMSM" in line and "from the cache" in line for line in evaluated["logs"])  # the pretrained one
    for name in ("model", "untrained", "real"):
        assert 0 <= with_damsm["scores"][name]["damsm_r_precision"] <= 1
        assert "damsm_r_precision" not in without["scores"][name]
        for gated in ("fid", "r_precision"):  # the gated scores do not change
            assert with_damsm["scores"][name][gated] == without["scores"][name][gated]
    assert with_damsm["evaluation_key"] == without["evaluation_key"]  # champions stay comparable
    assert "MirrorGAN paper" in with_damsm["produced_by"]["damsm_rprecision_encoder"]["protocol"]
    report = Path(with_damsm["files"]["report.html"]).read_text()
    assert "R-precision, DAMSM (MirrorGAN paper&#x27;s protocol)" in report or "MirrorGAN paper's protocol" in report


def test_the_registry_keeps_the_families_apart(evaluated, tmp_path):
    from components.promote import GateConfig, promote
    from components.promote.registry import client, ensure_registered_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    evaluation = evaluated["runs"][True]
    gate = GateConfig(max_fid=1e9, min_rprecision=0.0)
    summary = promote(evaluation=evaluation, name="", tracking_uri=uri, out_dir=tmp_path / "d1", gate=gate)
    assert (summary["name"], summary["architecture"], summary["version"]) == ("mirrorgan", "mirrorgan", "1")
    mlflow_client = client(uri)
    assert mlflow_client.get_registered_model("mirrorgan").tags["architecture"] == "mirrorgan"
    assert mlflow_client.get_model_version("mirrorgan", "1").tags["gate"] == "passed"
    ensure_registered_model(mlflow_client, "xmcgan", architecture="xmcgan")
    with pytest.raises(ValueError, match="registered model 'xmcgan' holds xmcgan models"):
        promote(evaluation=evaluation, name="xmcgan", tracking_uri=uri, out_dir=tmp_path / "d2", gate=gate)
    assert not mlflow_client.search_model_versions("name='xmcgan'")


def test_a_mirrorgan_model_folder_is_served_over_http_and_refuses_prompts_it_has_no_word_for(trained, tmp_path):
    with ServerProcess("--model-uri", str(trained / "model"), log=tmp_path / "server.log") as server:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=60) as http:
            body = {"instances": [{"prompt": "a red circle"}], "parameters": {"seed": 4, "images_per_prompt": 2}}
            response = http.post("/v1/models/xmcgan:predict", json=body)
            assert response.status_code == 200, response.text
            assert len(response.json()["predictions"][0]["images"]) == 2
            refused = http.post(
                "/v1/models/xmcgan:predict",
                json={"instances": [{"prompt": "a red circle"}, {"prompt": "zebra xylophone"}]},
            )
            assert refused.status_code == 400
            assert refused.json()["error"].startswith("instances[1].prompt: no word of the prompt is in the model's")
            v2 = {"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["qwerty"]}]}
            refused = http.post("/v2/models/xmcgan/infer", json=v2)
            assert refused.status_code == 400 and refused.json()["error"].startswith("inputs[0].data[0]: no word")
