"""The evaluation step end to end on demo records: real images as "generated" reach the ceiling, noise
the floor; files, provenance, the caption set, caches; a model folder with the untrained baseline;
the CLI; the dual encoder trained, saved and reused."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_evaluate_data import write_records
from test_fid import PIXEL_STATS  # registers the cheap test extractor with torch-fidelity

from components.evaluate import EvalConfig, evaluate, read_records
from components.evaluate.__main__ import main as evaluate_cli
from components.evaluate.dual_encoder import DualEncoder, DualEncoderConfig, dual_encoder_for, encoder_version
from components.evaluate.fidelity import file_sha256
from model.config import ModelConfig
from model.generator import Generator
from model.sampling import write_model_folder
from model.text_encoder import DEFAULT_TEXT_ENCODER

DUAL = {"steps": 60, "batch_size": 32, "input_size": 64, "dim": 64}


@pytest.fixture(scope="module")
def records_root(demo_root, tmp_path_factory):
    return write_records(demo_root, tmp_path_factory.mktemp("processed"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def config(cache_dir, **overrides):
    values = dict(
        num_samples=16, extractor=PIXEL_STATS, rprecision_candidates=20, rprecision_repeats=5, kid_subsets=20,
        demo_shapes=True, grid_captions=4, cache_dir=str(cache_dir), dual_encoder=DUAL,
    )  # fmt: skip
    return EvalConfig(**{**values, **overrides})


def real_lookup(records):
    """A 'generator' that returns the real image each caption was written for."""
    image_of = {c: image for image, captions in zip(records.images, records.captions, strict=True) for c in captions}
    return lambda captions, seed: np.stack([image_of[c] for c in captions])


def noise(captions, seed):
    return np.random.default_rng(seed).integers(0, 256, (len(captions), 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def ceiling_and_floor(records_root, cache_dir, tmp_path_factory):
    records = read_records(records_root, "coco", "val")
    logs = []
    runs = {}
    for name, generate in (("real", real_lookup(records)), ("noise", noise)):
        out = tmp_path_factory.mktemp(name)
        summary = evaluate(
            data_root=records_root, out_dir=out, data_version="demo-v1", config=config(cache_dir),
            generate=generate, log=logs.append,
        )  # fmt: skip
        runs[name] = (summary, out)
    return runs, logs


def test_real_images_reach_the_ceiling_and_noise_the_floor(ceiling_and_floor):
    (real, _), (noisy, _) = ceiling_and_floor[0]["real"], ceiling_and_floor[0]["noise"]
    assert real["scores"]["model"] == real["scores"]["real"]  # the same images score the same
    assert real["metrics"]["r_precision"] > 3 / 20  # the trained dual encoder beats chance (1/20) on real pairs
    assert real["metrics"]["caption_accuracy"] > 0.9
    assert noisy["metrics"]["fid"] > 10 * real["metrics"]["fid"]
    assert noisy["metrics"]["kid_mean"] > real["metrics"]["kid_mean"]
    assert noisy["metrics"]["r_precision"] < real["metrics"]["r_precision"]
    assert noisy["metrics"]["caption_accuracy"] < 0.2
    assert noisy["scores"]["real"] == real["scores"]["real"]  # the ceiling does not depend on the model


def test_every_score_says_what_produced_it(ceiling_and_floor):
    summary, out = ceiling_and_floor[0]["noise"]
    produced = summary["produced_by"]
    assert produced["extractor"]["name"] == PIXEL_STATS and len(produced["extractor"]["weights_sha256"]) == 64
    assert produced["extractor"]["resize"] == "tf1-bilinear"
    assert (produced["num_generated"], produced["num_real"], produced["image_size"]) == (16, 16, 64)
    assert produced["rprecision_encoder"]["kind"] == "dual"
    assert summary["data_version"] == "demo-v1" and summary["caption_set"]["size"] == 16
    assert json.loads((out / "evaluation.json").read_text()) == summary
    assert json.loads((out / "caption_set.json").read_text())["id"] == summary["caption_set"]["id"]
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and summary["evaluation_key"] in report
    assert f"{summary['metrics']['fid']:.4g}" in report and "caption accuracy" in report
    assert (out / "samples.png").stat().st_size > 0


def test_models_on_the_same_data_share_the_evaluation_and_its_caches(ceiling_and_floor, cache_dir):
    runs, logs = ceiling_and_floor
    assert runs["real"][0]["evaluation_key"] == runs["noise"][0]["evaluation_key"]
    assert runs["real"][0]["caption_set"]["id"] == runs["noise"][0]["caption_set"]["id"]
    assert [m for m in logs if "real features" in m] == [
        "evaluate: real features of 16 images computed",
        "evaluate: real features of 16 images from cache",
    ]
    assert sum("dual encoder: reusing" in m for m in logs) == 1
    assert len(list((cache_dir / "caption-embeddings").glob("*.safetensors"))) == 1  # the pool, encoded once


def test_a_pinned_caption_set_must_match_the_data_version(ceiling_and_floor, records_root, cache_dir, tmp_path):
    pinned = ceiling_and_floor[0]["noise"][1] / "caption_set.json"
    with pytest.raises(ValueError, match="drawn from data version demo-v1"):
        evaluate(
            data_root=records_root, out_dir=tmp_path, data_version="demo-v2",
            config=config(cache_dir, caption_set=str(pinned)), generate=noise,
        )  # fmt: skip


def test_generate_must_return_one_uint8_image_per_caption(records_root, cache_dir, tmp_path):
    with pytest.raises(ValueError, match="generate must return uint8"):
        evaluate(
            data_root=records_root, out_dir=tmp_path, data_version="demo-v1", config=config(cache_dir),
            generate=lambda captions, seed: noise(captions, seed)[:-1],
        )  # fmt: skip


def tiny_model(folder):
    torch.manual_seed(123)  # not the untrained baseline's initialisation (seeded by the eval seed, 0)
    model_config = ModelConfig(
        image_size=16, z_dim=8, text_dim=384, g_base=4, g_channels=(2, 1), d_base=4, d_channels=(1, 2, 2),
        attention_size=8, region_size=8,
    )  # fmt: skip
    return write_model_folder(
        folder,
        generator=Generator(model_config),
        text_encoder={"name": DEFAULT_TEXT_ENCODER, "max_length": 17},
        provenance={"training_run_id": "run-1"},
    )


def test_cli_scores_a_model_folder_with_the_untrained_baseline(records_root, cache_dir, tmp_path, capsys):
    model_dir = tiny_model(tmp_path / "model")
    dual = json.dumps(DUAL)
    evaluate_cli([
        "--model", str(model_dir), "--data-root", str(records_root), "--out", str(tmp_path / "eval"),
        "--data-version", "demo-v1", "--num-samples", "8", "--extractor", PIXEL_STATS, "--rprecision-candidates", "20",
        "--kid-subsets", "5", "--untrained-baseline", "true", "--demo-shapes", "true", "--cache-dir", str(cache_dir),
        "--dual-encoder", dual,
    ])  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["scores"]) == {"model", "untrained", "real"}
    summary = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert summary["model"]["provenance"]["training_run_id"] == "run-1"
    assert "<code>run-1</code>" in (tmp_path / "eval" / "report.html").read_text()
    assert summary["produced_by"]["image_size"] == 16  # real images are brought to the generator's size
    assert summary["scores"]["model"]["fid"] != summary["scores"]["untrained"]["fid"]  # different weights
    with pytest.raises(SystemExit):
        evaluate_cli(["--model", str(model_dir), "--data-root", str(records_root), "--out", "x", "--split", "test"])


def test_dual_encoder_is_saved_versioned_and_reused(records_root, tmp_path):
    logs = []
    settings = DualEncoderConfig(**DUAL)
    first = dual_encoder_for(
        data_root=records_root, source="coco", data_version="v1", config=settings, cache_dir=tmp_path, log=logs.append
    )
    again = dual_encoder_for(
        data_root=records_root, source="coco", data_version="v1", config=settings, cache_dir=tmp_path, log=logs.append
    )
    backbone = file_sha256(settings.weights_path())
    assert (
        first.version
        == again.version
        == encoder_version(settings, data_version="v1", source="coco", backbone_sha256=backbone)
    )
    assert first.version != encoder_version(settings, data_version="v2", source="coco", backbone_sha256=backbone)
    assert first.version != encoder_version(replace(settings, steps=61), data_version="v1", source="coco",
                                            backbone_sha256=backbone)  # fmt: skip
    assert sum("reusing" in m for m in logs) == 1
    assert first.training["final_loss"] < first.training["first_loss"]
    records = read_records(records_root, "coco", "val")
    images = first.encode_images(records.images[:4])
    assert torch.allclose(images, again.encode_images(records.images[:4]), atol=1e-5)
    assert torch.allclose(images.norm(dim=-1), torch.ones(4), atol=1e-5)
    folder = tmp_path / "dual-encoders" / f"dual-{first.version}"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "projections.safetensors"]
    with pytest.raises(FileNotFoundError, match="MobileNetV2 weights not found"):
        DualEncoder.load(folder, backbone_weights=str(tmp_path / "missing.pth"))
    impostor = tmp_path / "impostor.pth"
    impostor.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="hash"):
        DualEncoder.load(folder, backbone_weights=str(impostor))


def test_caption_vectors_of_the_embed_step_are_reused_when_they_match(records_root, tmp_path):
    from components.evaluate.dual_encoder import stored_sentence_embeddings
    from model.data import EMBEDDING_SCHEMA, embeddings_dir

    settings = DualEncoderConfig(**DUAL)
    records = read_records(records_root, "coco", "train")
    assert stored_sentence_embeddings(records_root, records, settings, source="coco", split="train") is None
    rows = [
        {
            "image_id": image_id,
            "source": "coco",
            "split": "train",
            "caption_index": index,
            "caption": caption,
            "token_embeddings": b"",
            "attention_mask": b"",
            "sentence_embedding": np.full(384, row + index / 10, np.float32).tobytes(),
        }
        for row, (image_id, captions) in enumerate(zip(records.image_ids, records.captions, strict=True))
        for index, caption in enumerate(captions)
    ][::-1]  # stored order does not matter
    folder = tmp_path / embeddings_dir("", settings.text_encoder, settings.max_length, "coco", "train").lstrip("/")
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=EMBEDDING_SCHEMA), folder / "part-00000.parquet")
    for split in ("train", "val"):  # the records beside them
        (tmp_path / "records" / "coco").mkdir(parents=True, exist_ok=True)
        shutil.copytree(records_root / "records" / "coco" / split, tmp_path / "records" / "coco" / split)
    vectors = stored_sentence_embeddings(tmp_path, records, settings, source="coco", split="train")
    assert vectors.shape == (5 * len(records), 384)
    assert vectors[0, 0] == 0.0 and vectors[6, 0] == pytest.approx(1.1)  # image 1, caption 1, in record order
    changed = replace(records, captions=[["another caption", *records.captions[0][1:]], *records.captions[1:]])
    assert stored_sentence_embeddings(tmp_path, changed, settings, source="coco", split="train") is None


def test_a_champion_from_another_evaluation_is_rescored_by_the_evaluate_step(
    records_root, cache_dir, tmp_path, monkeypatch
):
    from components.promote import GateConfig, promote
    from components.promote.registry import client, scores_on

    monkeypatch.chdir(tmp_path)  # whatever MLflow writes relative to the working folder stays in tmp_path
    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lax = GateConfig(max_fid=1e9, min_rprecision=0.0, fid_tolerance=1e9, rprecision_tolerance=1.0)
    summaries = {}
    for name, samples in (("a", 8), ("b", 10)):  # different sample counts: different evaluations
        model_dir = tiny_model(tmp_path / name)
        evaluation = evaluate(
            data_root=records_root, out_dir=tmp_path / f"eval-{name}", data_version="demo-v1",
            config=config(cache_dir, num_samples=samples, demo_shapes=False), model_dir=model_dir, log=lambda m: None,
        )  # fmt: skip
        summaries[name] = promote(
            evaluation=tmp_path / f"eval-{name}" / "evaluation.json", name="m", tracking_uri=registry,
            out_dir=tmp_path / f"promote-{name}", gate=lax, log=lambda m: None,
        )  # fmt: skip
        summaries[name]["evaluation"] = evaluation
    assert summaries["a"]["promote"] and summaries["b"]["promote"]
    key_b = summaries["b"]["evaluation"]["evaluation_key"]
    assert summaries["a"]["evaluation"]["evaluation_key"] != key_b
    rescored = scores_on(client(registry).get_model_version("m", "1"), key_b)
    assert rescored["evaluation_key"] == key_b  # the champion's folder was scored on b's evaluation
    assert rescored["fid"] == pytest.approx(summaries["b"]["evaluation"]["metrics"]["fid"], rel=1e-4)  # same weights
    assert any("champion v1" in r for r in summaries["b"]["reasons"])


def test_real_features_streamed_from_the_files_equal_one_pass_over_the_decoded_split(records_root, monkeypatch):
    """The split streamed in chunks of whole feature batches gives the extractor the batches of one pass over
    the decoded split (the old path): the same features, bit for bit, whatever the chunking."""
    from components.evaluate import run as evaluation
    from components.evaluate.data import read_split
    from components.evaluate.fidelity import create_extractor, extract_features

    extractor = create_extractor(PIXEL_STATS)
    decoded = read_records(records_root, "coco", "val")
    one_pass = extract_features(evaluation.resize_all(decoded.images, (32, 32)), extractor, batch_size=3)
    monkeypatch.setattr(evaluation, "REAL_CHUNK_BATCHES", 2)  # chunks of 6 of the 16 images: 6, 6, 4
    split = read_split(records_root, "coco", "val").images
    for images in (split, decoded.images):
        streamed = evaluation.streamed_features(images, (32, 32), extractor, batch_size=3)
        assert torch.equal(streamed, one_pass)
