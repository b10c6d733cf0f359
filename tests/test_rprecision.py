"""R-precision: 1.0 for an encoder perfect by construction, about 1/candidates for a random one; the
pluggable encoders (a tiny CLIP saved and loaded like a hub model, the project's dual encoder)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from components.evaluate.rprecision import CLIPEncoder, caption_pool, r_precision, score_images

CAPTIONS = [f"caption number {i}" for i in range(300)]


class IndexEncoder:
    """Perfect by construction: image i carries i in its first pixel, caption i is 'caption number i';
    both map to the one-hot vector e_i."""

    def encode_images(self, images):
        index = images[:, 0, 0, 0].astype(np.int64) * 256 + images[:, 0, 0, 1]
        return F.one_hot(torch.from_numpy(index), len(CAPTIONS)).float()

    def encode_texts(self, texts):
        return F.one_hot(torch.tensor([int(t.rsplit(" ", 1)[1]) for t in texts]), len(CAPTIONS)).float()

    def describe(self):
        return {"kind": "test", "name": "index"}


class RandomEncoder(IndexEncoder):
    def __init__(self, seed):
        self.rng = torch.Generator().manual_seed(seed)

    def encode_images(self, images):
        return F.normalize(torch.randn(len(images), 64, generator=self.rng), dim=-1)

    def encode_texts(self, texts):
        return F.normalize(torch.randn(len(texts), 64, generator=self.rng), dim=-1)


def indexed_images(count):
    images = np.zeros((count, 8, 8, 3), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(count) // 256, np.arange(count) % 256
    return images


def score(encoder, images, *, candidates=100, repeats=10):
    pool, owned = caption_pool([[c] for c in CAPTIONS])
    return score_images(
        encoder,
        images,
        CAPTIONS[: len(images)],
        pool,
        encoder.encode_texts(pool),
        owned[: len(images)],
        candidates=candidates,
        repeats=repeats,
        seed=0,
    )


def test_perfect_encoder_scores_one():
    result = score(IndexEncoder(), indexed_images(300))
    assert result["r_precision"] == 1.0 and result["r_precision_std"] == 0.0
    assert len(result["per_repeat"]) == 10 and result["candidates"] == 100


def test_random_encoder_scores_near_one_in_candidates():
    result = score(RandomEncoder(seed=1), indexed_images(300), repeats=20)
    assert abs(result["r_precision"] - 0.01) < 0.01  # 6000 draws: the std of the estimate is about 0.0013
    assert result["r_precision_std"] > 0
    assert 0.1 < score(RandomEncoder(seed=2), indexed_images(300), candidates=5)["r_precision"] < 0.3  # 1/5


def test_swapped_images_score_zero():
    images = indexed_images(300)[::-1].copy()  # image i now shows pair 299 - i
    assert score(IndexEncoder(), images)["r_precision"] < 0.01  # only the middle pair, if any, can match


def test_own_captions_are_never_negatives():
    """An image's other captions describe it too: they must not be drawn as negatives."""
    texts, owned = caption_pool([["a", "b"], ["c"], ["b", "d"]])
    assert texts == ["a", "b", "c", "d"]
    assert owned.tolist() == [[True, True, False, False], [False, False, True, False], [False, True, False, True]]
    image = F.normalize(torch.tensor([[1.0, 0.0]]), dim=-1)
    pool = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0], [0.5, 1.0]]), dim=-1)
    # image 0's true caption is "a"; "b" (also its caption) is nearly identical but excluded, so "a" wins
    result = r_precision(image, np.array([0]), pool, ~owned[:1], candidates=3, repeats=5)
    assert result["r_precision"] == 1.0


def test_too_small_pool_is_a_clear_error():
    negatives = ~np.eye(3, 50, dtype=bool)  # 49 negatives per image
    with pytest.raises(ValueError, match=r"needs 99 negative captions per image.*only 49"):
        r_precision(torch.eye(50)[:3], np.arange(3), torch.eye(50), negatives, candidates=100)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny CLIP model, tokenizer and image processor saved like a hub checkpoint (no hub weights offline)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    characters = sorted(ByteLevel.alphabet())  # byte-level BPE without merges: one token per character
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for character in characters:
        vocab.setdefault(character, len(vocab))
        vocab.setdefault(character + "</w>", len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 64,
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},  # CLIP pools at the end token
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_clip_encoder_loads_a_saved_model_by_path(tiny_clip):
    encoder = CLIPEncoder(str(tiny_clip), batch_size=4)
    images = np.random.default_rng(0).integers(0, 256, (6, 48, 40, 3), dtype=np.uint8)
    image_embeddings = encoder.encode_images(images)
    text_embeddings = encoder.encode_texts(["a red circle on the left", "a blue square", "x"] * 2)
    assert image_embeddings.shape == (6, 16) and text_embeddings.shape == (6, 16)
    assert torch.allclose(image_embeddings.norm(dim=-1), torch.ones(6), atol=1e-5)
    assert torch.allclose(text_embeddings[0], text_embeddings[3], atol=1e-5)  # batching does not change a row
    assert not torch.allclose(text_embeddings[0], text_embeddings[1])
    description = encoder.describe()
    assert description["kind"] == "clip" and description["name"] == str(tiny_clip)
    assert description["weights_sha256"] == CLIPEncoder(str(tiny_clip)).describe()["weights_sha256"]
    assert json.dumps(description)
