"""TextToImage and the model folder, with the real (offline) MiniLM text encoder."""

import json

import numpy as np
import pytest
import torch

from model.config import ModelConfig
from model.generator import Generator
from model.sampling import TextToImage, image_noise
from model.text_encoder import TextEncoder, masked_mean

CONFIG = ModelConfig(image_size=32, z_dim=8, g_base=4, g_channels=(4, 2, 1), d_base=4, d_channels=(1, 2, 4, 4))


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(max_length=17)


@pytest.fixture(scope="module")
def pipeline(encoder):
    torch.manual_seed(0)
    generator = Generator(CONFIG.replace(text_dim=encoder.dim))
    generator.train()(torch.randn(4, 8), encoder(["a", "b", "c", "d"]))  # non-trivial running statistics
    return TextToImage(text_encoder=encoder, generator=generator, provenance={"run_id": "abc"})


def test_text_encoder_is_frozen_and_reads_its_width(encoder):
    assert encoder.dim == 384 and encoder.max_length == 17
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training and not encoder.encoder.training
    text = encoder(["a red circle", "a big blue square at the top on a white background"])
    assert text.words.shape == (2, 17, 384) and text.mask.dtype == torch.bool
    assert text.mask.sum(1).tolist()[0] < text.mask.sum(1).tolist()[1] < 17
    torch.testing.assert_close(text.sentence, masked_mean(text.words, text.mask))


def test_same_prompt_seed_and_index_give_the_same_image_whatever_the_batch(pipeline):
    alone = pipeline(["a blue square"], seed=3, images_per_prompt=2)
    mixed = pipeline(["a red circle on the left", "a blue square", "two shapes"], seed=3, images_per_prompt=3)
    assert alone.shape == (2, 32, 32, 3) and alone.dtype == np.uint8
    assert mixed.shape == (9, 32, 32, 3)
    assert np.array_equal(mixed[3:5], alone)  # prompt 1's first two images
    assert not np.array_equal(mixed[3], mixed[4])  # different index, different noise
    assert not np.array_equal(pipeline(["a blue square"], seed=4)[0], alone[0])  # different seed
    # the one path from embeddings and noise keys to pixels, which evaluation and serving call too
    keyed = pipeline.images(pipeline.text_encoder(["a blue square"] * 2), [(3, 0), (3, 1)])
    assert np.array_equal(keyed, alone)


def test_noise_streams_are_independent_of_each_other():
    assert torch.equal(image_noise(seed=1, index=2, z_dim=8), image_noise(seed=1, index=2, z_dim=8))
    assert not torch.equal(image_noise(seed=1, index=2, z_dim=8), image_noise(seed=2, index=1, z_dim=8))
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        image_noise(seed=-1, index=0, z_dim=8)


def test_model_folder_round_trip(pipeline, tmp_path):
    pipeline.save_pretrained(tmp_path, provenance={"run_id": "abc", "data_version": "d1"})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"] == pipeline.generator.config.to_dict()
    assert config["text_encoder"] == {"name": "sentence-transformers/all-MiniLM-L6-v2", "max_length": 17}
    assert config["provenance"] == {"run_id": "abc", "data_version": "d1"}
    assert (tmp_path / "generator.safetensors").is_file()

    loaded = TextToImage.from_pretrained(tmp_path)
    prompts = ["a green triangle in the center", "a small red square"]
    assert np.array_equal(
        loaded(prompts, seed=11, images_per_prompt=2), pipeline(prompts, seed=11, images_per_prompt=2)
    )
    text, z = pipeline.text_encoder(prompts), torch.randn(2, 8)
    assert torch.equal(loaded.generate(text, z), pipeline.generate(text, z))
    assert loaded.provenance["data_version"] == "d1"


def test_bad_requests_and_folders_fail_clearly(pipeline, encoder, tmp_path):
    with pytest.raises(ValueError, match="prompts must be a list of non-empty strings"):
        pipeline(["ok", " "], seed=0)
    with pytest.raises(ValueError, match="images_per_prompt must be a positive integer"):
        pipeline(["ok"], seed=0, images_per_prompt=0)
    with pytest.raises(ValueError, match="gives width 384, the generator was built for text_dim 768"):
        TextToImage(text_encoder=encoder, generator=Generator(CONFIG.replace(text_dim=768)))
    (tmp_path / "config.json").write_text(json.dumps({"model": CONFIG.replace(text_dim=384).to_dict()}))
    with pytest.raises(ValueError, match="needs a 'text_encoder' entry"):
        TextToImage.from_pretrained(tmp_path)
