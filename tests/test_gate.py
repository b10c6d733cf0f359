"""The gate's decision: every branch (thresholds, champion comparison, first model, incomparable champion)."""

import pytest

from components.promote.config import GateConfig
from components.promote.gate import decide

GATE = GateConfig(max_fid=50.0, min_rprecision=0.3, fid_tolerance=2.0, rprecision_tolerance=0.02)


def scores(fid, rprecision, key="eval-1", **extra):
    return {"fid": fid, "r_precision": rprecision, "evaluation_key": key, **extra}


def test_first_model_passing_the_thresholds_is_promoted():
    decision = decide(scores(40.0, 0.5), None, GATE)
    assert decision.promote
    assert any("no champion yet" in r for r in decision.reasons)
    assert decision.champion is None and decision.thresholds["max_fid"] == 50.0


@pytest.mark.parametrize(
    ("fid", "rprecision", "failing"),
    [(50.1, 0.5, "FID 50.1 > 50"), (40.0, 0.29, "R-precision 0.29 < 0.3"), (60.0, 0.1, "FID 60 > 50")],
)
def test_thresholds_block_promotion(fid, rprecision, failing):
    decision = decide(scores(fid, rprecision), None, GATE)
    assert not decision.promote
    assert f"FAIL: {failing}" in decision.reasons


def test_thresholds_are_inclusive():
    assert decide(scores(50.0, 0.3), None, GATE).promote


@pytest.mark.parametrize(
    ("candidate", "promote", "failing"),
    [
        (scores(31.9, 0.58), True, None),  # within both tolerances of the champion (30, 0.6)
        (scores(20.0, 0.7), True, None),  # better on both
        (scores(32.1, 0.7), False, "FID 32.1 vs champion v3 30: worse than tolerance 2"),
        (scores(25.0, 0.57), False, "R-precision 0.57 vs champion v3 0.6: worse than tolerance 0.02"),
    ],
)
def test_candidate_must_not_be_worse_than_the_champion(candidate, promote, failing):
    decision = decide(candidate, scores(30.0, 0.6, version="3"), GATE)
    assert decision.promote is promote
    if failing:
        assert f"FAIL: {failing}" in decision.reasons
    assert decision.champion["version"] == "3"


def test_a_champion_scored_on_another_evaluation_cannot_be_compared():
    decision = decide(scores(10.0, 0.9), scores(30.0, 0.6, key="eval-0", version="1"), GATE)
    assert not decision.promote
    assert any("FAIL" in r and "cannot compare" in r for r in decision.reasons)


def test_thresholds_apply_even_when_better_than_the_champion():
    decision = decide(scores(60.0, 0.5), scores(80.0, 0.4, version="1"), GATE)
    assert not decision.promote and "FAIL: FID 60 > 50" in decision.reasons


def test_gate_config_is_validated():
    with pytest.raises(ValueError, match="min_rprecision must be in"):
        GateConfig(min_rprecision=1.5)
    with pytest.raises(ValueError, match="fid_tolerance must be non-negative"):
        GateConfig(fid_tolerance=-1.0)
    with pytest.raises(ValueError, match="unknown options"):
        GateConfig.from_dict({"max_fid": 1.0, "max_fidd": 2.0})


def test_caption_accuracy_is_gated_only_when_asked():
    demo = GateConfig(max_fid=50.0, min_rprecision=0.3, min_caption_accuracy=0.6)
    assert decide(scores(40.0, 0.5, caption_accuracy=0.61), None, demo).promote
    low = decide(scores(40.0, 0.5, caption_accuracy=0.59), None, demo)
    assert not low.promote and "FAIL: caption accuracy 0.59 < 0.6" in low.reasons
    missing = decide(scores(40.0, 0.5), None, demo)
    assert not missing.promote and any("has none" in r for r in missing.reasons)
    assert decide(scores(40.0, 0.5, caption_accuracy=0.0), None, GATE).promote  # 0: not gated
    with pytest.raises(ValueError, match="min_caption_accuracy must be in"):
        GateConfig(min_caption_accuracy=1.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_demo_thresholds_reject_an_untrained_generator(seed):
    """make demo's gate (params.yaml) fails a randomly initialised demo generator on caption accuracy
    alone: even with a perfect FID and R-precision its pixels do not say what the captions do."""
    import random
    from pathlib import Path

    import numpy as np
    import torch
    import yaml

    from components.demo_data.scenes import caption_accuracy, captions, sample_scene
    from model.config import DEMO_PRESET, preset
    from model.generator import Generator
    from model.text_encoder import TextEmbedding

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert params["pipeline"]["preset"] == DEMO_PRESET
    gate = GateConfig.from_dict(params["gate"])  # what make demo's gate step and `components.promote --params` use
    rng = random.Random(seed)
    texts = [captions(sample_scene(rng, two_shape_fraction=0.3), rng, 1)[0] for _ in range(64)]
    torch.manual_seed(seed)
    config = preset(DEMO_PRESET)[0].replace(text_dim=32)
    generator = Generator(config).eval()  # text of any width: untrained weights ignore its meaning anyway
    text = TextEmbedding(torch.randn(64, 17, 32), torch.ones(64, 17, dtype=torch.bool), torch.randn(64, 32))
    with torch.no_grad():
        images = generator(torch.randn(64, config.z_dim), text).add(1).mul(127.5).round().byte()
    pixels = images.permute(0, 2, 3, 1).numpy()
    accuracy = float(
        np.nanmean([caption_accuracy(image, caption) for image, caption in zip(pixels, texts, strict=True)])
    )
    decision = decide(scores(0.0, 1.0, caption_accuracy=accuracy), None, gate)
    assert not decision.promote, f"untrained caption accuracy {accuracy:.3f} passed the demo gate"
    assert any(r.startswith("FAIL: caption accuracy") for r in decision.reasons)
