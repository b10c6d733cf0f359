"""Training refuses records smaller than its preset's image size (xmcgan-256 on 128 px records),
naming both sizes, instead of upsampling them; larger records are resized down."""

import pytest

from model.training import TrainConfig, train
from model.training_data import check_record_size, record_image_size


def test_a_preset_larger_than_the_records_is_refused_naming_both_sizes(processed_demo, tmp_path):
    assert record_image_size(processed_demo, "coco", "train") == (32, 32)
    config = TrainConfig(run_dir=str(tmp_path / "run"), data_root=str(processed_demo), preset="xmcgan-256")
    with pytest.raises(ValueError, match=r"preset 'xmcgan-256' trains at 256x256 px .* coco/train are 32x32 px"):
        train(config)
    assert not (tmp_path / "run" / "data-cache").exists()  # refused before any array is built


def test_smaller_models_are_resized_down_and_upsampling_is_an_explicit_choice(processed_demo):
    check = dict(data_root=processed_demo, sources=("coco",), split="train", model="test")
    check_record_size(**check, image_size=32)
    check_record_size(**check, image_size=16)  # down: the authors' bilinear resize
    with pytest.raises(ValueError, match=r"64x64 px .* 32x32 px: records are not upsampled"):
        check_record_size(**check, image_size=64)
    check_record_size(**check, image_size=64, upsample=True)
    with pytest.raises(ValueError, match="no records"):
        check_record_size(**{**check, "sources": ("ln_coco",)}, image_size=32)
