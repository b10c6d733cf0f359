"""The evaluation protocols by name: "paper" resolves to 30,000 samples and 3 runs, the score is the
mean of the runs it really made, every metric says whether it is comparable to the paper's and why
not, and the real images' statistics (both resizes and the extraction) are computed once per data
version. Tiny sizes: the 30,000 samples are overridden, which the label then reports."""

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_evaluate_data import write_records
from test_fid import PIXEL_STATS  # registers the cheap test extractor with torch-fidelity

import components.evaluate.run as evaluation
from components.evaluate import EvalConfig, evaluate
from components.evaluate.fidelity import TF_INCEPTION
from components.evaluate.protocol import COCO_2014_VAL_IMAGES, NOT_IN_PAPER, fid_differences, paper_labels

PAPER_FACTS = dict(
    protocol="paper", num_generated=30_000, extractor=TF_INCEPTION, packaged_weights=True, resize="tf1-bilinear",
    source="coco", split="val", demo_shapes=False, num_real=COCO_2014_VAL_IMAGES, coco_2014_val_files=True,
)  # fmt: skip


def test_the_paper_protocol_resolves_to_30k_samples_and_3_runs():
    paper, demo = EvalConfig(protocol="paper"), EvalConfig()
    assert (paper.num_samples, paper.runs, paper.seeds) == (30_000, 3, (0, 1, 2))
    assert (demo.protocol, demo.num_samples, demo.runs, demo.seeds) == ("demo", 200, 1, (0,))  # unchanged default
    overridden = EvalConfig(protocol="paper", num_samples=500, seed=4)
    assert (overridden.num_samples, overridden.runs, overridden.seeds) == (500, 3, (4, 5, 6))
    assert EvalConfig.from_dict(paper.to_dict()) == paper  # what promotion re-evaluates a champion with


def test_the_config_reports_every_problem_at_once():
    with pytest.raises(ValueError) as error:
        EvalConfig(protocol="paper", source="ln_coco", runs=0, num_samples=1)
    message = str(error.value)
    assert "protocol paper scores COCO-2014 val (coco/val), got ln_coco/val" in message
    assert "runs must be at least 1, got 0" in message and "num_samples must be at least 2" in message
    with pytest.raises(ValueError, match=r"protocol must be one of \['demo', 'paper'\].*runs must be at least 1"):
        EvalConfig(protocol="papers", runs=0)


def test_only_the_papers_protocol_on_coco_2014_val_gives_a_comparable_fid():
    assert fid_differences(**PAPER_FACTS) == []
    labels = paper_labels(["fid", "kid_mean", "r_precision"], runs=3, **PAPER_FACTS)["metrics"]
    assert labels["fid"]["comparable"] and "mean of 3 runs" in labels["fid"]["why"]
    assert labels["kid_mean"] == {"comparable": False, "why": "the paper reports no KID"}
    assert not labels["r_precision"]["comparable"] and "its own image-text dual encoder" in labels["r_precision"]["why"]
    assert set(NOT_IN_PAPER) | {"fid"} == set(evaluation.METRIC_KEYS)  # every metric has a label
    each = {
        "protocol": ("demo", "protocol 'demo', not 'paper'"),
        "num_generated": (500, "500 generated samples, not the paper's 30,000"),
        "extractor": ("inception-v3-compat", "extractor inception-v3-compat, not the TF FID Inception"),
        "packaged_weights": (False, "weights from a file given here"),
        "resize": ("bicubic-antialias", "resize bicubic-antialias, not TF 1.x bilinear"),
        "demo_shapes": (True, "the demo shapes data, not COCO-2014 val"),
        "split": ("train", "scored on coco/train, not COCO-2014 val"),
        "coco_2014_val_files": (False, "the records are not COCO-2014 val images"),
        "num_real": (5_000, "real statistics of 5,000 images, not COCO-2014 val's 40,504"),
    }
    for fact, (value, reason) in each.items():
        (difference,) = fid_differences(**{**PAPER_FACTS, fact: value})
        assert reason in difference, fact
    demo = paper_labels(["fid"], runs=1, **{**PAPER_FACTS, "protocol": "demo", "demo_shapes": True})
    assert demo["metrics"]["fid"]["why"].startswith("protocol 'demo', not 'paper'; the demo shapes data")


class MeanColourEncoder:
    """A cheap image-text encoder: images by their mean colour, captions by a hash of their words."""

    def encode_images(self, images):
        return F.normalize(torch.from_numpy(images.reshape(len(images), -1, 3).mean(1)).float() + 1, dim=-1)

    def encode_texts(self, texts):
        return F.normalize(torch.tensor([[len(t) % 7 + 1, len(t.split()) + 1, 1.0] for t in texts]), dim=-1)

    def describe(self):
        return {"kind": "test", "name": "mean colour"}


def seeded_noise(captions, seed):
    """32 px images (the records are 64 px: the real split is resized) that depend on the noise seed."""
    return np.random.default_rng(seed).integers(0, 256, (len(captions), 32, 32, 3), dtype=np.uint8)


class Spy:
    """Wraps a function of an image array; keeps the number of images of each call."""

    def __init__(self, function):
        self.function, self.sizes = function, []

    def __call__(self, images, *args, **kwargs):
        self.sizes.append(len(images))
        return self.function(images, *args, **kwargs)


@pytest.fixture(scope="module")
def records_root(demo_root, tmp_path_factory):
    return write_records(demo_root, tmp_path_factory.mktemp("processed"))  # 16 val images at 64 px


def test_paper_runs_are_averaged_labelled_and_reuse_the_real_statistics(records_root, tmp_path, monkeypatch):
    resizes, extractions = Spy(evaluation.resize_all), Spy(evaluation.extract_features)
    monkeypatch.setattr(evaluation, "resize_all", resizes)
    monkeypatch.setattr(evaluation, "extract_features", extractions)
    seeds_asked = []

    def generate(captions, seed):
        seeds_asked.append(seed)
        return seeded_noise(captions, seed)

    settings = dict(protocol="paper", num_samples=8, extractor=PIXEL_STATS, kid_subsets=5, rprecision_candidates=4,
                    rprecision_repeats=2, grid_captions=2, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    logs = []
    runs = evaluate(data_root=records_root, out_dir=tmp_path / "runs", data_version="demo-v1",
                    config=EvalConfig(**settings), generate=generate, encoder=MeanColourEncoder(),
                    log=logs.append)  # fmt: skip
    # The protocol's 3 runs: the same 8 captions, noise seeds 0, 1, 2; the split resized and extracted once.
    assert seeds_asked == [0, 1, 2] and runs["runs"]["seeds"] == [0, 1, 2]
    assert resizes.sizes == [16, 8] and extractions.sizes == [16, 8, 8, 8]  # split, real set; split, 3 model runs
    per_run = [r["fid"] for r in runs["runs"]["scores"]["model"]]
    assert len(set(per_run)) == 3  # three different generations
    assert runs["metrics"]["fid"] == pytest.approx(np.mean(per_run))
    assert runs["runs"]["std"]["model"]["fid"] == pytest.approx(np.std(per_run, ddof=1))
    assert len(runs["runs"]["scores"]["real"]) == 1 and runs["runs"]["std"]["real"]["fid"] is None  # scored once
    assert runs["produced_by"]["generation"]["seeds"] == [0, 1, 2]
    # Labelled: an overridden sample count on the demo records is not the paper's number, and says why.
    fid = runs["paper"]["metrics"]["fid"]
    assert not fid["comparable"] and "protocol" not in fid["why"]
    for reason in ("8 generated samples, not the paper's 30,000", "extractor test-pixel-stats",
                   "not COCO-2014 val images", "real statistics of 16 images"):  # fmt: skip
        assert reason in fid["why"]
    assert set(runs["paper"]["metrics"]) == set(runs["metrics"])
    assert json.loads((tmp_path / "runs" / "evaluation.json").read_text())["paper"] == runs["paper"]
    report = (tmp_path / "runs" / "report.html").read_text()
    assert "not comparable" in report and "8 generated samples, not the paper&#x27;s 30,000" in report
    assert re.search(r"<td>[\d.e-]+ &plusmn; [\d.e-]+</td>", report)  # mean ± std over the runs
    assert "paper: 3 runs, noise seeds [0, 1, 2]" in report

    # A second evaluation of the same data version: the real features come from the cache, so neither the
    # split's resize nor its extraction runs again; its single run is the first run above.
    resizes.sizes.clear()
    extractions.sizes.clear()
    single = evaluate(data_root=records_root, out_dir=tmp_path / "single", data_version="demo-v1",
                      config=EvalConfig(**settings, runs=1), generate=seeded_noise, encoder=MeanColourEncoder(),
                      log=logs.append)  # fmt: skip
    assert resizes.sizes == [8] and extractions.sizes == [8]  # the caption set's real images, the model's
    assert [m for m in logs if "real features" in m] == [
        "evaluate: real features of 16 images computed",
        "evaluate: real features of 16 images from cache",
    ]
    assert single["scores"]["model"] == runs["runs"]["scores"]["model"][0]
    assert single["scores"]["real"] == runs["scores"]["real"]
    assert single["runs"]["std"]["model"]["fid"] is None and "mean of" not in single["paper"]["metrics"]["fid"]["why"]


def test_the_demo_protocol_on_demo_data_says_why_it_is_not_the_papers(records_root, tmp_path):
    summary = evaluate(data_root=records_root, out_dir=tmp_path, data_version="demo-v1",
                       config=EvalConfig(num_samples=8, extractor=PIXEL_STATS, kid_subsets=5, rprecision_candidates=4,
                                         demo_shapes=True, grid_captions=0, cache_dir=str(tmp_path / "cache")),
                       generate=seeded_noise, encoder=MeanColourEncoder(), log=lambda m: None)  # fmt: skip
    assert summary["protocol"] == "demo" and summary["runs"]["seeds"] == [0]
    labels = summary["paper"]["metrics"]
    assert set(labels) == {"fid", "kid_mean", "kid_std", "r_precision", "r_precision_std", "caption_accuracy"}
    assert not any(label["comparable"] for label in labels.values())
    assert "protocol 'demo', not 'paper'" in labels["fid"]["why"] and "the demo shapes data" in labels["fid"]["why"]
    assert labels["caption_accuracy"]["why"] == NOT_IN_PAPER["caption_accuracy"]
    report = (tmp_path / "report.html").read_text()
    assert not re.search(r"\d &plusmn; \d", report) and "the demo shapes data, not COCO-2014 val" in report
