"""Model and loss configs: presets, dict/JSON round trips, clear errors on bad values."""

import json

import pytest

from model.config import DEMO_PRESET, PRESETS, LossConfig, ModelConfig, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    model_config, loss_config = preset(name, text_dim=384)
    assert type(model_config).from_dict(json.loads(json.dumps(model_config.to_dict()))) == model_config
    assert type(loss_config).from_dict(json.loads(json.dumps(loss_config.to_dict()))) == loss_config


def test_authors_configuration():
    model_config, loss_config = preset("xmcgan-128")
    assert (model_config.image_size, model_config.g_base, model_config.d_base, model_config.z_dim) == (128, 96, 96, 128)
    assert model_config.g_channels == (16, 8, 4, 2, 1) and model_config.d_channels == (1, 2, 4, 8, 16, 16)
    assert (model_config.attention_size, model_config.region_size, model_config.attention_gamma) == (16, 16, 15.0)
    assert (loss_config.word_gamma1, loss_config.word_gamma2, loss_config.word_gamma3) == (5.0, 5.0, 50.0)
    assert loss_config.temperature == 0.1 and not loss_config.gather_negatives
    weights = [loss_config.adversarial_weight, loss_config.sentence_weight, loss_config.word_weight]
    assert [*weights, loss_config.image_weight, loss_config.vgg_weight] == [1.0] * 5
    assert preset("xmcgan-256")[0].image_size == 256


def test_text_dim_comes_from_the_encoder():
    model_config, _ = preset("cpu-64")
    assert model_config.text_dim is None
    with pytest.raises(ValueError, match="text_dim"):
        model_config.require_text_dim()
    assert model_config.replace(text_dim=768).require_text_dim() == 768


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(image_size=100), "image_size must be a power of two"),
        (dict(g_channels=(8, 4)), "g_channels needs one entry per doubling"),
        (dict(d_channels=(1, 2)), "d_channels needs 6 entries"),
        (dict(attention_size=128), "attention_size must be a power of two in \\[8, image_size / 2 = 64\\]"),
        (dict(region_size=12), "region_size must be a power of two"),
        (dict(z_dim=0), "z_dim must be a positive integer"),
        (dict(text_dim=-3), "text_dim must be a positive integer"),
        (dict(attention_gamma=0.0), "attention_gamma must be positive"),
    ],
)
def test_invalid_model_config_names_the_problem(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(word_weight=-1.0), "word_weight must be a finite number >= 0"),
        (dict(temperature=0.0), "temperature must be a positive number"),
        (dict(vgg_layer="block9_pool"), "vgg_layer must be one of"),
        (dict(vgg_layer="block3_pool", vgg_input_size=20), "vgg_input_size must be None or a positive multiple of 8"),
        (dict(adversarial_weight=0, sentence_weight=0, word_weight=0), "the discriminator has no loss"),
    ],
)
def test_invalid_loss_config_names_the_problem(changes, message):
    with pytest.raises(ValueError, match=message):
        LossConfig(**changes)


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown preset 'xmcgan-512'"):
        preset("xmcgan-512")
    with pytest.raises(ValueError, match="unknown options \\['g_width'\\]"):
        ModelConfig.from_dict({"g_width": 3})
    with pytest.raises(ValueError, match="unknown options \\['gamma'\\]"):
        LossConfig().replace(gamma=1.0)


def test_a_preset_carries_its_training_recipe_and_explicit_settings_win(tmp_path):
    from model.config import AUTHORS_RECIPE, RECIPE_FIELDS
    from model.training import TrainConfig

    authors = TrainConfig(run_dir=str(tmp_path), data_root=str(tmp_path), preset="xmcgan-128")
    assert {name: getattr(authors, name) for name in RECIPE_FIELDS} == AUTHORS_RECIPE
    assert (authors.batch_size, authors.g_lr, authors.d_lr, authors.betas) == (56, 1e-4, 4e-4, (0.5, 0.999))
    assert authors.horizontal_flip and authors.origins["g_lr"] == "preset xmcgan-128"
    demo = TrainConfig(run_dir=str(tmp_path), data_root=str(tmp_path), g_lr=3e-4)  # the default preset
    assert demo.preset == DEMO_PRESET
    assert demo.g_lr == 3e-4 and "g_lr" not in demo.origins  # set explicitly
    assert not demo.horizontal_flip and demo.origins["horizontal_flip"] == f"preset {DEMO_PRESET}"
    assert demo.total_images == PRESETS[DEMO_PRESET].recipe["total_images"]  # a budget in images
    assert TrainConfig.from_dict(demo.to_dict()) == demo  # the resolved config round-trips
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        TrainConfig(run_dir=str(tmp_path), data_root=str(tmp_path), preset="nope")


def test_the_command_line_records_where_each_setting_came_from(tmp_path):
    from components.train.__main__ import parse_arguments

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  preset: xmcgan-128\n  d_lr: 2.0e-4\n")
    config, _ = parse_arguments(["--params", str(params), "--run-dir", "r", "--data-root", "d", "--g-lr", "5e-5"])
    assert (config.g_lr, config.d_lr, config.batch_size) == (5e-5, 2e-4, 56)
    assert config.origins["g_lr"] == "command line" and config.origins["d_lr"] == "params.yaml"
    assert config.origins["batch_size"] == "preset xmcgan-128"


def test_json_numbers_from_kfp_become_the_int_fields_they_set():
    """kfp carries dict parameters through JSON, so 16 arrives as 16.0 in model_overrides."""
    mirrorgan, _ = preset("mirrorgan-64", base_size=16.0, stages=2.0, g_base=4.0)
    assert (mirrorgan.base_size, mirrorgan.stages, mirrorgan.g_base) == (16, 2, 4)
    assert type(mirrorgan.base_size) is int
    xmcgan, _ = preset("cpu-64", g_channels=[8.0, 4.0, 2.0, 1.0], z_dim=64.0)
    assert xmcgan.g_channels == (8, 4, 2, 1) and type(xmcgan.z_dim) is int
    with pytest.raises(ValueError, match="z_dim must be a positive integer"):
        preset("cpu-64", z_dim=64.5)  # not integral: still refused
