"""Generator and discriminator: shapes for every preset, masks, spectral norm, save/load, EMA."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from model.config import PRESETS, ModelConfig, preset
from model.discriminator import Discriminator
from model.ema import ema_update
from model.generator import Generator
from model.layers import RegionCondition, SpatialConditionalBatchNorm, word_region_attention
from model.text_encoder import TextEmbedding

CPU_PRESETS = ("cpu-64", "cpu-32")
TINY = ModelConfig(
    image_size=32,
    z_dim=8,
    text_dim=12,
    g_base=4,
    g_channels=(4, 2, 1),
    d_base=4,
    d_channels=(1, 2, 4, 4),
    region_size=8,
)


def make_text(batch: int, tokens: int, dim: int, *, lengths: list[int], seed: int = 0) -> TextEmbedding:
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(tokens)[None] < torch.tensor(lengths)[:, None]
    return TextEmbedding(torch.randn(batch, tokens, dim, generator=g), mask, torch.randn(batch, dim, generator=g))


@pytest.mark.parametrize(  # the CPU presets run for real below; MirrorGAN presets in tests/test_mirrorgan_model.py
    "name", sorted(n for n, p in PRESETS.items() if p.architecture == "xmcgan" and n not in CPU_PRESETS)
)
def test_large_presets_build_with_the_right_shapes_on_the_meta_device(name):
    config, _ = preset(name, text_dim=768)
    with torch.device("meta"):
        generator, discriminator = Generator(config), Discriminator(config)
        text = make_text(2, 17, 768, lengths=[5, 17])
        images = generator(torch.randn(2, config.z_dim), text)
        out = discriminator(images, text.sentence)
    size, width = config.image_size, config.d_base * config.d_channels[-1]
    assert images.shape == (2, 3, size, size)
    assert out.logits.shape == (2,) and out.image_features.shape == out.sentence_features.shape == (2, width)
    assert out.region_features.shape == (2, config.region_size**2, 768)


@pytest.mark.parametrize("name", CPU_PRESETS)
def test_cpu_preset_runs_for_real(name):
    config, _ = preset(name, text_dim=384)
    torch.manual_seed(0)
    generator, discriminator = Generator(config), Discriminator(config)
    text = make_text(3, 17, 384, lengths=[4, 9, 17])
    images = generator(torch.randn(3, config.z_dim), text)
    size, width = config.image_size, config.d_base * config.d_channels[-1]
    assert images.shape == (3, 3, size, size) and images.abs().max() <= 1 and images.std() > 0.05
    out = discriminator(images, text.sentence)
    assert out.logits.shape == (3,) and torch.isfinite(out.logits).all()
    assert out.image_features.shape == out.sentence_features.shape == (3, width)
    assert out.region_features.shape == (3, config.region_size**2, 384)


def test_coordinate_channels_are_inputs_where_asked():
    """(y, x) coordinates beside G's 4x4 map and D's pixels: two more input channels of each first block."""
    config = TINY.replace(g_coordinates=True, d_coordinates=True)
    torch.manual_seed(0)
    generator, discriminator = Generator(config), Discriminator(config)
    plain_generator, plain_discriminator = Generator(TINY), Discriminator(TINY)
    assert generator.global_blocks[0].conv1.in_channels == plain_generator.global_blocks[0].conv1.in_channels + 2
    assert discriminator.blocks[0].conv1.in_channels == plain_discriminator.blocks[0].conv1.in_channels + 2 == 5
    text = make_text(2, 5, TINY.text_dim, lengths=[5, 3])
    images = generator(torch.randn(2, TINY.z_dim), text)
    assert images.shape == (2, 3, 32, 32)
    assert discriminator(images, text.sentence).logits.shape == (2,)


@pytest.mark.parametrize("sentence_input", [False, True])
def test_the_4x4_input_map_takes_the_sentence_only_where_asked(sentence_input):
    """g_sentence_input: G's first linear reads [W s ; z] (the layout can follow the caption), else z alone."""
    torch.manual_seed(0)
    generator = Generator(TINY.replace(g_sentence_input=sentence_input)).eval()
    seen = []
    generator.fc.register_forward_hook(lambda module, inputs, output: seen.append(output))
    z = torch.randn(2, TINY.z_dim)
    text = make_text(2, 5, TINY.text_dim, lengths=[5, 3])
    other = TextEmbedding(text.words, text.mask, text.sentence + 1.0)  # only the sentence vector changes
    generator(z, text), generator(z, other)
    assert generator.fc.in_features == (2 if sentence_input else 1) * TINY.z_dim
    assert torch.equal(seen[0], seen[1]) is not sentence_input


def test_padded_words_change_nothing():
    torch.manual_seed(0)
    generator = Generator(TINY).eval()
    text = make_text(2, 6, TINY.text_dim, lengths=[3, 6])
    z = torch.randn(2, TINY.z_dim)
    changed = copy.deepcopy(text)
    changed.words[0, 3:] = torch.randn(3, TINY.text_dim) * 10  # only padded positions of caption 0
    assert torch.equal(generator(z, text), generator(z, changed))
    changed.words[0, 2] += 1.0  # a real word does matter
    assert not torch.allclose(generator(z, text)[0], generator(z, changed)[0])


def test_attention_ignores_padding_and_sums_to_one():
    text = make_text(2, 5, 4, lengths=[2, 5])
    attention, words = word_region_attention(torch.randn(2, 9, 4), text.words, text.mask, gamma=15.0)
    assert attention.shape == (2, 9, 5)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 9))
    assert attention[0, :, 2:].max() == 0
    torch.testing.assert_close(words.norm(dim=-1), torch.ones(2, 5))


def test_factored_spatial_modulation_equals_the_authors_1x1_convolution():
    """γ from projected words equals a 1x1 conv of the upsampled [context ; c] map (the authors' order)."""
    torch.manual_seed(0)
    b, size, tokens, text_dim, cond_dim, channels = 2, 4, 5, 6, 3, 7
    layer = SpatialConditionalBatchNorm(channels, text_dim, cond_dim, momentum=0.1, eps=1e-5, sync=False)
    nn.init.normal_(layer.gamma_words.bias)
    attention = torch.rand(b, size * size, tokens).softmax(-1)
    cond = RegionCondition(attention, torch.randn(b, tokens, text_dim), torch.randn(b, cond_dim), size=size)
    x = torch.randn(b, channels, 2 * size, 2 * size)
    expected_norm = torch.nn.functional.batch_norm(x, None, None, training=True)

    context = (attention @ cond.words).transpose(1, 2).reshape(b, text_dim, size, size)
    cond_map = torch.cat([context, cond.global_cond[:, :, None, None].expand(-1, -1, size, size)], dim=1)
    cond_map = torch.nn.functional.interpolate(cond_map, scale_factor=2, mode="nearest")

    def conv(words_layer, global_layer):
        weight = torch.cat([words_layer.weight, global_layer.weight], dim=1)[:, :, None, None]
        return torch.nn.functional.conv2d(cond_map, weight, words_layer.bias)

    expected = expected_norm * (1 + conv(layer.gamma_words, layer.gamma_global)) + conv(
        layer.beta_words, layer.beta_global
    )
    torch.testing.assert_close(layer(x, cond), expected, rtol=1e-4, atol=1e-5)


def test_spectral_norm_on_the_discriminator_only():
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    d_layers = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    g_layers = [m for m in generator.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert d_layers and all(parametrize.is_parametrized(m, "weight") for m in d_layers)
    assert g_layers and not any(parametrize.is_parametrized(m) for m in g_layers)
    # and it normalises: the largest singular value of every D weight is about 1 after a few training passes
    discriminator.train()
    images, sentence = torch.randn(2, 3, 32, 32), torch.randn(2, TINY.text_dim)
    for _ in range(30):
        discriminator(images, sentence)
    for layer in d_layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_save_and_load_give_identical_outputs(tmp_path):
    torch.manual_seed(0)
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    text, z = make_text(2, 6, TINY.text_dim, lengths=[3, 6]), torch.randn(2, TINY.z_dim)
    generator.train()
    generator(z, text)  # running statistics move away from their initial values
    discriminator.train()
    discriminator(torch.randn(2, 3, 32, 32), text.sentence)  # so do the spectral-norm vectors
    generator.save_pretrained(tmp_path)
    discriminator.save_pretrained(tmp_path)

    generator_loaded = Generator.from_pretrained(tmp_path)
    discriminator_loaded = Discriminator.from_pretrained(tmp_path)
    assert generator_loaded.config == TINY and not generator_loaded.training
    images = generator.eval()(z, text)
    assert torch.equal(generator_loaded(z, text), images)
    assert torch.equal(
        discriminator_loaded.eval()(images, text.sentence).logits, discriminator.eval()(images, text.sentence).logits
    )


def test_from_pretrained_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        Generator.from_pretrained(tmp_path)
    Generator(TINY).save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no discriminator\.safetensors"):
        Discriminator.from_pretrained(tmp_path)


def test_generator_rejects_inputs_of_the_wrong_width():
    generator = Generator(TINY)
    with pytest.raises(ValueError, match=r"text\.words must be \(batch, tokens, 12\)"):
        generator(torch.randn(2, TINY.z_dim), make_text(2, 6, 384, lengths=[3, 6]))


def test_ema_update_averages_parameters_and_copies_buffers():
    torch.manual_seed(0)
    generator = Generator(TINY)
    ema = copy.deepcopy(generator)
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(1.0)
    generator.train()(torch.randn(2, TINY.z_dim), make_text(2, 6, TINY.text_dim, lengths=[3, 6]))
    before = {k: v.clone() for k, v in ema.named_parameters()}
    ema_update(ema, generator, decay=0.9)
    for name, param in generator.named_parameters():
        torch.testing.assert_close(dict(ema.named_parameters())[name], 0.9 * before[name] + 0.1 * param)
    for name, buffer in generator.named_buffers():
        assert torch.equal(dict(ema.named_buffers())[name], buffer)


def test_spatial_batch_norm_keeps_its_combined_fan_initialisation():
    """Glorot of one (text_dim + cond_dim) -> channels layer, as the authors' 1x1 conv, not of each
    child linear: init_glorot must not overwrite the layer's own reset."""
    from model.layers import SpatialConditionalBatchNorm

    torch.manual_seed(0)
    config, _ = preset("xmcgan-128", text_dim=768)
    norms = [m for m in Generator(config).modules() if isinstance(m, SpatialConditionalBatchNorm)]
    assert len(norms) == 7
    for norm in norms:
        channels, text_dim = norm.gamma_words.weight.shape
        intended = (2 / (text_dim + norm.gamma_global.in_features + channels)) ** 0.5
        for layer in (norm.gamma_words, norm.gamma_global, norm.beta_words, norm.beta_global):
            assert layer.weight.std().item() == pytest.approx(intended, rel=0.03)
        # what the global linear's own Glorot init would give (the bug): clearly more
        assert (2 / (norm.gamma_global.in_features + channels)) ** 0.5 > 1.2 * intended
