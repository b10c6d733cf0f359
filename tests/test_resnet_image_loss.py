"""The pretrained image-image loss on ResNet-50 ImageNet logits (the authors' released code) as an
option beside VGG-19 features: config, weights by local path, the loss's value and gradients.
A randomly initialised torchvision ResNet-50 stands in for the ImageNet weights (no downloads)."""

import pytest
import torch
from torchvision.models import resnet50

from model.config import LossConfig, ModelConfig
from model.discriminator import Discriminator
from model.generator import Generator
from model.losses import info_nce
from model.objective import XMCGANLoss, pretrained_image_encoder
from model.resnet import ResNet50Logits
from model.text_encoder import TextEmbedding
from model.vgg import VGG19Features

TINY = ModelConfig(image_size=32, z_dim=8, text_dim=12, g_base=4, g_channels=(4, 2, 1), d_base=4,
                   d_channels=(1, 2, 4, 4), region_size=8)  # fmt: skip


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("resnet") / "resnet50-random.pth"
    torch.save(resnet50().state_dict(), path)
    return path


def test_resnet_logits_need_weights_by_path_and_the_default_stays_vgg():
    assert LossConfig().image_encoder == "vgg19"
    with pytest.raises(ValueError, match="image_encoder_weights"):
        LossConfig(image_encoder="resnet50_logits")
    with pytest.raises(ValueError, match="image_encoder must be one of"):
        LossConfig(image_encoder="resnet152")
    assert LossConfig(image_encoder="resnet50_logits", vgg_weight=0.0).vgg_weight == 0  # off: no weights needed
    with pytest.raises(FileNotFoundError, match="ResNet-50 weights not found"):
        ResNet50Logits(weights="/nonexistent/resnet50.pth")


def test_the_loss_is_infonce_on_resnet50_logits_and_trains_only_the_generator(weights_file):
    config = LossConfig(image_encoder="resnet50_logits", image_encoder_weights=str(weights_file), vgg_input_size=64)
    encoder = pretrained_image_encoder(config)
    assert isinstance(encoder, ResNet50Logits) and encoder.input_size == 64
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    assert pretrained_image_encoder(LossConfig(image_encoder="resnet50_logits",
                                               image_encoder_weights=str(weights_file))).input_size == 224  # fmt: skip

    torch.manual_seed(0)
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    with pytest.raises(ValueError, match="ResNet50Logits"):
        XMCGANLoss(generator=generator, discriminator=discriminator, vgg=VGG19Features(layer="block1_pool"),
                   config=config)  # fmt: skip
    loss = XMCGANLoss(generator=generator, discriminator=discriminator, vgg=encoder, config=config)
    fake, real = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        logits = encoder(real)
    assert logits.shape == (3, 1000)
    expected = info_nce(encoder(fake), logits, temperature=config.temperature)
    assert torch.allclose(loss._vgg_loss(fake, real), expected)

    text = TextEmbedding(torch.randn(3, 5, 12), torch.ones(3, 5, dtype=torch.bool), torch.randn(3, 12))
    only_pretrained = config.replace(adversarial_weight=0.0, sentence_weight=1e-9, word_weight=0.0, image_weight=0.0)
    loss = XMCGANLoss(generator=generator, discriminator=discriminator, vgg=encoder, config=only_pretrained)
    value, terms = loss.generator_loss(real=real, text=text, z=torch.randn(3, TINY.z_dim))
    value.backward()
    assert terms["g_vgg"] > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    assert all(p.grad is None for p in encoder.parameters())


def test_training_runs_with_the_resnet_option(processed_demo, weights_file, tmp_path):
    from model.training import TrainConfig, train

    summary = train(
        TrainConfig.from_dict(
            {
                "run_dir": str(tmp_path / "run"),
                "data_root": str(processed_demo),
                "model_overrides": {
                    "image_size": 32,
                    "g_base": 8,
                    "g_channels": [4, 2, 1],
                    "d_base": 8,
                    "d_channels": [1, 2, 4, 4],
                },
                "loss_overrides": {
                    "image_encoder": "resnet50_logits",
                    "image_encoder_weights": str(weights_file),
                    "vgg_input_size": 32,
                },
                "batch_size": 8,
                "total_images": 16,
                "workers": 0,
            }
        )
    )
    assert summary["images_seen"] == 16  # two D steps of 8 per G step
